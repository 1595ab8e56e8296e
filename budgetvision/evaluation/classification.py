"""Top-1 accuracy, loss, per-batch spread and the confusion matrix on one split."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.loader import eval_batches
from ..models.layers import eval_mode

SPREAD_SEED = 0  # the fixed shuffle the per-batch spread is measured over, so it is reproducible


def batch_accuracy_std(correct: Tensor, batch_size: int, seed: int | None = SPREAD_SEED) -> float:
    """Std of the accuracy of batches of `batch_size` drawn without replacement in a seeded random
    order (the papers' "±": a shuffled test loader's per-batch spread). Stored order would measure
    the data set's layout instead: a folder set is stored class by class, so its batches are each
    one class and the spread is the spread of per-class accuracies. seed None keeps stored order."""
    if seed is not None:
        correct = correct[torch.randperm(len(correct), generator=torch.Generator().manual_seed(seed))]
    if len(correct) <= batch_size:
        return 0.0  # one batch has no spread
    per_batch = torch.stack([c.float().mean() for c in correct.split(batch_size)])
    return float(per_batch.std())


@torch.no_grad()
def evaluate_classifier(network: nn.Module, x: Tensor, y: Tensor, *, mean, std, device, num_classes: int,
                        batch_size: int = 512, amp: bool = False, spread_seed: int | None = SPREAD_SEED) -> dict:
    """Accuracy over the whole split, and the std of per-batch accuracies over seeded shuffled
    batches of `batch_size` (the papers' "±"; `batch_accuracy_std`)."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp and torch.device(device).type == "cuda" \
        else contextlib.nullcontext()
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.long)
    correct = []
    with eval_mode(network), autocast:
        for xb, yb in eval_batches(x, y, batch_size, mean=mean, std=std, device=device):
            logits = network(xb).float()
            total_loss += F.cross_entropy(logits, yb, reduction="sum").double()
            pred = logits.argmax(dim=1)
            correct.append(pred == yb)
            confusion += torch.bincount(yb * num_classes + pred, minlength=num_classes * num_classes)
    confusion = confusion.view(num_classes, num_classes).cpu()
    n = int(confusion.sum())
    correct = torch.cat(correct).cpu()
    return {
        "loss": float(total_loss) / max(n, 1),
        "accuracy": float(confusion.diag().sum()) / max(n, 1),
        "batch_accuracy_std": batch_accuracy_std(correct, batch_size, spread_seed),
        "n": n,
        "confusion": confusion,   # rows: true class, columns: predicted
    }
