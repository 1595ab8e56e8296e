"""Cross-entropy classification, with optional label smoothing."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Classification(nn.Module):
    def __init__(self, network: nn.Module, label_smoothing: float = 0.0):
        super().__init__()
        self.network = network
        self.label_smoothing = label_smoothing

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean loss over the batch and the logits (for running accuracy)."""
        logits = self.network(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        return loss, logits

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.network(x).argmax(dim=1)
