"""Top-1 accuracy, loss, per-batch spread and the confusion matrix on one split."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.loader import eval_batches


@torch.no_grad()
def evaluate_classifier(network: nn.Module, x: Tensor, y: Tensor, *, mean, std, device, num_classes: int,
                        batch_size: int = 512, amp: bool = False) -> dict:
    """Accuracy over the whole split, and the std of per-batch accuracies (the papers' "±")."""
    was_training = network.training
    network.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp and torch.device(device).type == "cuda" \
        else contextlib.nullcontext()
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.long)
    batch_acc = []
    with autocast:
        for xb, yb in eval_batches(x, y, batch_size, mean=mean, std=std, device=device):
            logits = network(xb).float()
            total_loss += F.cross_entropy(logits, yb, reduction="sum").double()
            pred = logits.argmax(dim=1)
            batch_acc.append((pred == yb).float().mean())
            confusion += torch.bincount(yb * num_classes + pred, minlength=num_classes * num_classes)
    network.train(was_training)
    confusion = confusion.view(num_classes, num_classes).cpu()
    n = int(confusion.sum())
    batch_acc = torch.stack(batch_acc).cpu()
    return {
        "loss": float(total_loss) / max(n, 1),
        "accuracy": float(confusion.diag().sum()) / max(n, 1),
        "batch_accuracy_std": float(batch_acc.std()) if len(batch_acc) > 1 else 0.0,
        "n": n,
        "confusion": confusion,   # rows: true class, columns: predicted
    }
