"""Cross-entropy classification, with optional label smoothing."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Objective, optimizer_step


class Classification(Objective):
    """A classifier's objective. Its section (ClassificationConfig) holds only its name: label
    smoothing is a train.* option, handed in by build_objective."""

    def __init__(self, network: nn.Module, label_smoothing: float = 0.0):
        super().__init__()
        self.network = network
        self.label_smoothing = label_smoothing

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"classifier": self.network}

    def ema_target(self) -> nn.Module:
        return self.network

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"main": list(self.network.parameters())}

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean loss over the batch and the logits."""
        logits = self.network(x)
        return F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing), logits

    def train_step(self, x, y, opts, *, grad_clip=0.0):
        with self.autocast(x):
            loss, logits = self(x, y)
        optimizer_step(loss, opts["main"], self.network.parameters(), grad_clip=grad_clip)
        return {"loss": loss.detach(), "correct": (logits.detach().argmax(1) == y).sum()}
