"""ONNX export of a trained classifier or GAN generator, checked against onnxruntime.

A classifier's graph takes images standardised as the run trained on them ((pixel / 255 - mean) /
std, the statistics are written into the model's metadata and beside it) with any batch size, and
returns logits: the network exactly as the run evaluates it (its EMA copy when kept, flip test-time
augmentation inside the graph where the recipe uses it); it is checked on the run's own test images.
A GAN's graph is its generator as `sample` draws (the EMA copy when kept): latents, and class labels
when conditional, to images in [-1, 1], checked on the latents of seeds 0..n-1.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import splits_of
from .data.loader import eval_batches
from .errors import BudgetVisionError
from .io import write_json
from .objectives.base import seeded_normal
from .objectives.gan import GAN
from .runs import open_seed
from .setup import input_stats

CHECK_IMAGES = 512        # real test images (classifiers) or seeded samples (generators) checked
TOLERANCE = 1e-3          # max |output difference| accepted between PyTorch and onnxruntime (fp32)


@dataclass
class _Graph:
    """What one kind of run exports: the module, example inputs (the check's, batch first), the
    output's name, and what the metadata says about feeding it."""
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    output: str               # logits | images
    info: dict

    @property
    def diff_key(self) -> str:
        return f"max_abs_{self.output.removesuffix('s')}_diff"   # max_abs_logit_diff, max_abs_image_diff


def export_onnx(run_dir: Path, out: Path, *, seed: int | None = None, data_root: Path | None = None,
                check_images: int = CHECK_IMAGES) -> dict:
    """Write `out` (ONNX) and `out.json` (how to feed it and how well it matched); return the latter.
    A classifier maps standardised images to logits; a GAN's generator maps latents (and class
    labels) to images in [-1, 1]. Both take any batch size; ONNX opset: torch.onnx's default."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise BudgetVisionError("ONNX export needs the onnx and onnxruntime packages "
                                "(pip install 'budgetvision[export]')") from None
    run_dir, out = Path(run_dir), Path(out)
    opened = open_seed(run_dir, device=torch.device("cpu"), seed=seed, data_root=data_root)
    if opened.config.task == "classify":
        graph = _classifier(opened, data_root, check_images)
    elif isinstance(opened.objective, GAN):
        graph = _generator(opened, check_images)
    else:
        raise BudgetVisionError(f"{run_dir} is a {opened.config.objective.name} run; ONNX export takes classifier "
                                "runs and GAN runs (their generator): a diffusion sampler is a loop of network "
                                "calls, and PCA has no network")
    names = list(graph.inputs)
    batch = torch.export.Dim("batch", min=1)
    example = tuple(v[:2] for v in graph.inputs.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    program = torch.onnx.export(graph.module, example, dynamo=True, input_names=names, output_names=[graph.output],
                                dynamic_shapes=tuple({0: batch} for _ in names), verbose=False)
    model = program.model_proto
    info = {"preset": opened.config.preset, "run": str(run_dir), "seed": opened.seed, "step": opened.step,
            **graph.info, "opset": model.opset_import[0].version, "batch": "any (dynamic first axis)"}
    for key, value in info.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, out)

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = graph.module(*graph.inputs.values()).float()
    got = torch.from_numpy(session.run(None, {k: v.numpy() for k, v in graph.inputs.items()})[0])
    diff = (got - expected).abs().max().item()
    n = len(next(iter(graph.inputs.values())))
    info.update({"check_images": n, graph.diff_key: diff,
                 "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__})
    agree = 1.0
    if graph.output == "logits":
        agree = info["argmax_agreement"] = (got.argmax(1) == expected.argmax(1)).double().mean().item()
    write_json(out.with_name(out.name + ".json"), info)
    if diff > TOLERANCE or agree < 1.0:
        raise BudgetVisionError(f"ONNX graph {out} disagrees with PyTorch on its {n} check inputs (max |diff| "
                                f"{diff:.2e}, argmax agreement {100 * agree:.2f} %); see {out}.json")
    return info


def _classifier(opened, data_root: Path | None, check_images: int) -> _Graph:
    """The network as the run evaluates it, checked on the run's own test images."""
    cfg = opened.config
    splits = splits_of(cfg.data, data_root)
    mean, std = input_stats(cfg, opened.spec)   # the statistics the run trained with
    x, _ = next(eval_batches(*splits.test, check_images, mean=mean, std=std, device=torch.device("cpu")))
    return _Graph(opened.network, {"images": x}, "logits", {
        "input": "images (N, C, H, W) float32: (pixel / 255 - mean) / std per channel",
        "shape": [splits.spec.channels, splits.spec.image_size, splits.spec.image_size],
        "mean": list(mean), "std": list(std), "classes": list(splits.spec.class_names),
        "flip_tta": cfg.train.flip_tta, "tta_shift": cfg.train.tta_shift,
        "tta_shift_weight": cfg.train.tta_shift_weight})


class _Conditional(nn.Module):
    """generator(z, labels) with the labels an explicit int64 input (a conditional GAN's graph)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.generator(z, labels)


def _generator(opened, n: int) -> _Graph:
    """The generator as `sample` draws it (the EMA copy when kept, eval mode), checked on the latents
    of seeds 0..n-1 and, when conditional, labels seed % classes: the images `sample` writes."""
    objective, spec = opened.objective, opened.spec
    seeds = list(range(n))
    inputs = {"latents": seeded_normal(seeds, (objective.latent_dim,), torch.device("cpu"))}
    module = opened.network
    info = {"input": f"latents (N, {objective.latent_dim}) float32, standard normal",
            "output": "images (N, C, H, W) float32 in [-1, 1]: pixel = (image + 1) * 127.5",
            "shape": [spec.channels, spec.image_size, spec.image_size], "classes": list(spec.class_names)}
    if objective.conditional:
        inputs["labels"] = objective.labels_for(seeds)
        module = _Conditional(module)
        info["input"] += f"; labels (N,) int64 class indices in [0, {spec.num_classes})"
    return _Graph(module.eval(), inputs, "images", info)
