"""The five published systems budgetvision reproduces, one row each: who wrote it, what it is called,
what it reports and which presets reproduce it. The papers are the text files in ../shared/seeds/;
everywhere else (presets, README, docs) a paper is named by its `name` ("Hughes", "Anonymous"), never
by its file number. This module imports nothing of the package: presets.py and the README read it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    key: str                     # "hughes": what code refers to
    name: str                    # how prose and preset sources name it: "Hughes"
    authors: str                 # as the paper's first page gives them
    title: str                   # as the paper's first page gives it
    year: int | None             # None: the paper does not say
    file: str                    # its text in ../shared/seeds/
    reports: str                 # its headline results, in its own words and setting
    presets: tuple[str, ...]     # the presets (origin "paper") that reproduce it


PAPERS: tuple[Paper, ...] = (
    Paper(key="hughes", name="Hughes", authors="Ben Hughes",
          title="Parameter Efficient Discriminative and Generative Modelling", year=None,
          file="000_c7394eb9622d122c.txt",
          reports="AddNIST MobileNet: 90.4 % test (95.2 % train), 97,687 params, 10,000 steps; "
                  "CIFAR-100 SN-DCGAN: FID 56.63, 973,936 params, 50,000 steps",
          presets=("addnist-mobilenet", "cifar100-sn-dcgan")),
    Paper(key="jalil", name="Jalil", authors="Faiza Jalil",
          title="Efficient CIFAR-100 Modelling", year=None,
          file="001_4db0eb628fe0c771.txt",
          reports="CIFAR-100 depthwise-separable ResNet: 57.7 % test (65.5 % train), 94,372 params; "
                  "conditional aw-SN-GAN: FID 38.27 (unconditional 32.00), 942,812 params, 50,000 steps",
          presets=("cifar100-dsc-resnet", "cifar100-aw-sngan", "cifar100-aw-sngan-uncond")),
    Paper(key="zavileiskii", name="Zavileiskii", authors="Timofei Zavileiskii",
          title="Efficient CIFAR-100 Modelling", year=None,
          file="002_9c3a45fd1a94f399.txt",
          reports="CIFAR-100 bottleneck DSC residual network: 58.2 % test (81.5 % train), 99,703 params; "
                  "conditional DDPM: FID 58.00, 996,863 params, 50,000 steps",
          presets=("cifar100-bottleneck", "cifar100-ddpm")),
    Paper(key="anonymous", name="Anonymous", authors="anonymous",
          title="Modern Methods, Classical Constraints", year=None,
          file="003_ad6cc446b6356c2b.txt",
          reports="CIFAR-100 DSC stem + weight-tied transformer: 62.0 % validation (65.1 % train), 99,546 "
                  "params; v-diffusion with classifier-free guidance: FID 31.1, 982,371 params, 50,000 steps",
          presets=("cifar100-dsc-transformer", "cifar100-vdiffusion")),
    Paper(key="rzayev", name="Rzayev", authors="Anar Rzayev, Berhane Weldegebriel",
          title="CS492(A) Machine Learning for Computer Vision (KAIST course report)", year=None,
          file="004_839bef4976c119af.txt",
          reports="MNIST DCGAN and class-conditional CCGAN; a LeNet-5 judge (98.8 % test) reads 97.6 % of "
                  "the CCGAN's samples as their labels; per-class PCA as a generator saturates at 64 components",
          presets=("mnist-lenet", "mnist-dcgan", "mnist-ccgan", "mnist-pca")),
)

BY_KEY: dict[str, Paper] = {p.key: p for p in PAPERS}


def paper_of(preset: str) -> Paper | None:
    """The paper a preset reproduces; None for budgetvision's own recipes."""
    return next((p for p in PAPERS if preset in p.presets), None)


def markdown_table() -> str:
    """The README's table of the papers (between its `papers` markers, by benchmarks/update_readme.py)."""
    lines = ["| paper | authors | title | what it reports | reproduced by |", "| --- | --- | --- | --- | --- |"]
    for p in PAPERS:
        title = f"{p.title} ({p.year})" if p.year else p.title
        presets = ", ".join(f"`{name}`" for name in p.presets)
        lines.append(f"| {p.name} | {p.authors} | {title} | {p.reports} | {presets} |")
    return "\n".join(lines) + "\n"
