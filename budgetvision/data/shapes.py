"""Input shape and class count of each data set, known without loading it (for presets and
dry runs); a folder data set is loaded (and cached) to find out."""
from __future__ import annotations

from pathlib import Path

KNOWN = {  # name: (channels, image_size, num_classes)
    "addnist": (3, 28, 20),
    "cifar100": (3, 32, 100),
    "digits": (1, 16, 10),     # scikit-learn's 8x8 digits, upsampled x2
    "mnist": (1, 28, 10),
}


def data_shape(name: str, root: Path | None = None) -> tuple[int, int, int]:
    if name in KNOWN:
        return KNOWN[name]
    from .datasets import load_splits

    spec = load_splits(name, root).spec
    return spec.channels, spec.image_size, spec.num_classes
