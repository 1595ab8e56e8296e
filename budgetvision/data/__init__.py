"""Data sets as device-ready uint8 tensors, a device-resident batch loader, batched augmentations."""
from .augment import build_augment
from .datasets import DataSpec, Splits, cache_dir, data_root, dataset_names, load_splits, splits_of
from .loader import BatchLoader, eval_batches

__all__ = ["BatchLoader", "DataSpec", "Splits", "build_augment", "cache_dir", "data_root", "dataset_names",
           "eval_batches", "load_splits", "splits_of"]
