"""Figures as the papers show them: training graph, confusion matrix, learning-rate range test."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    # Drawn in memory, then written once atomically: a temporary file of a fixed name would be shared
    # by two writers, left behind on failure, and followed where a link sat in its place.
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def training_graph(rows_by_seed: dict[int, list[dict]], path: Path, title: str) -> None:
    """Train (running) and validation accuracy and loss against step, one line per seed."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (seed, rows) in enumerate(sorted(rows_by_seed.items())):
        colour = f"C{i % 10}"
        train = [r for r in rows if r["kind"] == "train"]
        val = [r for r in rows if r["kind"] == "val"]
        label = f" (seed {seed})" if len(rows_by_seed) > 1 else ""
        for ax, key in ((ax_acc, "accuracy"), (ax_loss, "loss")):
            ax.plot([r["step"] for r in train], [r[key] for r in train], color=colour, alpha=0.45, lw=1,
                    label=f"train{label}")
            if val:  # none where the run trained on the whole split (data.val_fraction = 0)
                ax.plot([r["step"] for r in val], [r[key] for r in val], color=colour, lw=2, marker="o", ms=3,
                        label=f"validation{label}")
    ax_acc.set(xlabel="optimisation step", ylabel="accuracy", ylim=(0, 1))
    ax_loss.set(xlabel="optimisation step", ylabel="cross-entropy loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, path)


def confusion_matrix(confusion, class_names, path: Path, title: str) -> None:
    """Row-normalised confusion matrix (rows: true class)."""
    conf = np.asarray(confusion, dtype=np.float64)
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    size = min(4 + 0.25 * k, 16)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046)
    if k <= 30:
        ax.set_xticks(range(k), class_names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), class_names, fontsize=7)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if conf[i, j]:
                    ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    _save(fig, path)


def lr_range_plot(lrs, losses, suggestion: float, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="C3", ls="--", label=f"suggested lr {suggestion:.2g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def sample_grid(images, path: Path, nrow: int = 8) -> None:
    """Images in [-1, 1] (N, C, H, W) as one PNG grid, in seed order, not cherry-picked."""
    from torchvision.utils import save_image

    buf = io.BytesIO()
    save_image(images.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5, buf, format="png", nrow=nrow, padding=1)
    atomic_write_bytes(Path(path), buf.getvalue())


def loss_curves(rows_by_seed: dict[int | str, list[dict]], path: Path, title: str,
                keys: list[str] | None = None) -> None:
    """Every logged training quantity of a generator run (G and D losses, scores, denoiser loss ...),
    or only `keys`, against step, one panel each; one line per seed (an int key) or per named run
    (a str key: a sweep's trials)."""
    skip = {"kind", "step", "lr", "images_per_s"}
    logged = {k for rows in rows_by_seed.values() for r in rows if r["kind"] == "train" for k in r} - skip
    keys = sorted(logged) if keys is None else [k for k in keys if k in logged]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4.5 * max(len(keys), 1), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, (seed, rows) in enumerate(sorted(rows_by_seed.items(), key=lambda kv: str(kv[0]))):
            train = [r for r in rows if r["kind"] == "train" and key in r]
            ax.plot([r["step"] for r in train], [r[key] for r in train], color=f"C{i % 10}", lw=1,
                    label=f"seed {seed}" if isinstance(seed, int) else seed)
        ax.set(xlabel="optimisation step", ylabel=key)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, path)


def score_bars(scores: dict[str, float], path: Path, title: str, ylabel: str) -> None:
    """One bar per named run (a sweep's trials, Rzayev's combinations), its score written on it."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(scores) + 2), 4.2))
    names = list(scores)
    bars = ax.bar(range(len(names)), [scores[n] for n in names], color="C0")
    ax.bar_label(bars, labels=[f"{100 * scores[n]:.1f}" for n in names], fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel=ylabel, ylim=(0, 1.05))
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    _save(fig, path)


def interpolation_grid(frames, path: Path) -> None:
    """(pairs, steps, C, H, W) in [-1, 1]: one row per pair, left to right along the path."""
    pairs, steps = frames.shape[:2]
    sample_grid(frames.reshape(pairs * steps, *frames.shape[2:]), path, nrow=steps)


def neighbours_figure(samples, neighbours, distances, path: Path, metric: str = "pixel L2") -> None:
    """Each row: a sample (framed) then its k nearest training images with their distances."""
    n, k = neighbours.shape[:2]
    fig, axes = plt.subplots(n, k + 1, figsize=(1.3 * (k + 1), 1.3 * n + 0.4), squeeze=False)

    def show(ax, img):
        img = (img.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5)
        ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if img.shape[0] == 1 else None,
                  vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])

    for r in range(n):
        show(axes[r][0], samples[r])
        for spine in axes[r][0].spines.values():
            spine.set(color="C3", lw=2)
        for c in range(k):
            show(axes[r][c + 1], neighbours[r, c])
            axes[r][c + 1].set_title(f"{float(distances[r, c]):.3f}", fontsize=7)
    axes[0][0].set_title("sample", fontsize=8)
    fig.suptitle(f"samples and their nearest training images ({metric})", fontsize=9)
    _save(fig, path)


def fraction_curve(fractions, accuracies, path: Path, title: str) -> None:
    """Test accuracy against the real share of the training set (Rzayev's figure)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(fractions, accuracies, marker="o")
    ax.set(xlabel="real fraction of the training set", ylabel="test accuracy (real test split)", title=title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def components_curve(curves: dict[str, tuple[list, list]], gan_accuracy, path: Path, title: str,
                     gan_label: str) -> None:
    """Judge accuracy of per-class PCA against the number of components, one line per way of making
    its images (label -> (components, accuracies)), the GAN as a line."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (components, accuracies) in curves.items():
        ax.plot(components, accuracies, marker="o", label=label)
    if gan_accuracy is not None:
        ax.axhline(gan_accuracy, color="C3", ls="--", label=gan_label)
    ax.set(xscale="log", xlabel="principal components per class", ylabel="judge accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
