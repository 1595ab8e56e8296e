"""LPIPS from each generated sample to its nearest training image (Jalil's memorisation check).

LPIPS is torchmetrics' port of the reference implementation (AlexNet backbone, the learned linear
layers torchmetrics ships). Only the AlexNet backbone weights are not shipped: they come from
torchvision's file in the torch hub cache, an explicit path, or a download.

Nearest is found in two stages: each sample's `candidates` nearest training images by pixel L2
(an exact scan of the whole training split), then the smallest LPIPS among those. An LPIPS scan
of every training image per sample would cost 50,000 network passes per sample on CIFAR.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import BudgetVisionError
from .fid import as_rgb, find_weights, load_state_dict_file
from .neighbours import pixel_nearest

LPIPS_CANDIDATES = 10       # pixel-L2 nearest training images per sample that LPIPS then ranks
LPIPS_MIN_SIDE = 32         # AlexNet's pooling leaves nothing of smaller images; CIFAR goes in as it is


def _alexnet_url() -> str:
    import torchvision

    return torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url


def find_lpips_weights(explicit: Path | None = None) -> Path:
    """torchvision's AlexNet weights (alexnet-owt-7be5be79.pth), the LPIPS backbone."""
    url = _alexnet_url()
    return find_weights(explicit, names=(url.rsplit("/", 1)[-1],), url=url, what="LPIPS",
                        source="torchvision's ImageNet AlexNet, the LPIPS backbone", option="--lpips-weights")


def load_lpips(weights: Path, device) -> nn.Module:
    """torchmetrics' LPIPS network (alex) with the backbone from `weights`, a torchvision AlexNet
    state dict (its `features.*` entries at least), and the linear layers torchmetrics ships."""
    import torchvision
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    alexnet = torchvision.models.alexnet(weights=None)
    # LPIPS uses only the convolutional `features`; a file without the classifier serves as well.
    state = {k[len("features."):]: v for k, v in load_state_dict_file(weights, "AlexNet").items()
             if k.startswith("features.")}
    try:
        alexnet.features.load_state_dict(state)
    except RuntimeError as e:
        raise BudgetVisionError(f"{weights} is not torchvision AlexNet weights: "
                                f"{str(e).splitlines()[0][:160]}") from None
    # pnet_rand builds the backbone without torchvision's download; its layers are filled from the
    # file below. LPIPS slices AlexNet's `features` keeping their indices as module names.
    net = _NoTrainLpips(pretrained=True, net="alex", pnet_rand=True)
    for part in net.net.children():
        for index, layer in part.named_children():
            layer.load_state_dict(alexnet.features[int(index)].state_dict())
    return net.to(device).eval()


def _lpips_input(images: Tensor, device) -> Tensor:
    """uint8 (N, C, H, W) -> RGB float in [-1, 1], at least LPIPS_MIN_SIDE pixels on a side."""
    x = as_rgb(images.to(device)).float().div(127.5).sub(1)
    if x.shape[-1] < LPIPS_MIN_SIDE or x.shape[-2] < LPIPS_MIN_SIDE:
        x = F.interpolate(x, size=(max(x.shape[-2], LPIPS_MIN_SIDE), max(x.shape[-1], LPIPS_MIN_SIDE)),
                          mode="bilinear", align_corners=False).clamp(-1, 1)
    return x


@torch.no_grad()
def lpips_distance(net: nn.Module, a: Tensor, b: Tensor, *, device, batch_size: int = 250) -> Tensor:
    """LPIPS between uint8 image pairs a[i], b[i]: (N,) float32 on the CPU."""
    if a.shape != b.shape or a.dtype != torch.uint8 or b.dtype != torch.uint8:
        raise ValueError(f"want two uint8 image sets of one shape, got {a.dtype} {tuple(a.shape)} and "
                         f"{b.dtype} {tuple(b.shape)}")
    out = [net(_lpips_input(a[i:i + batch_size], device), _lpips_input(b[i:i + batch_size], device)).flatten().cpu()
           for i in range(0, len(a), batch_size)]
    return torch.cat(out).float()


@torch.no_grad()
def nearest_lpips(net: nn.Module, samples: Tensor, train: Tensor, *, candidates: int = LPIPS_CANDIDATES,
                  device, batch_size: int = 250) -> tuple[Tensor, Tensor]:
    """Each uint8 sample's LPIPS to its nearest training image (the smallest LPIPS among its
    `candidates` pixel-L2 nearest): distances (N,) and training indices (N,)."""
    k = min(candidates, len(train))
    idx, _ = pixel_nearest(samples.to(device).float().div(127.5).sub(1), train, k=k)
    idx = idx.cpu()
    dist = lpips_distance(net, samples.repeat_interleave(k, 0), train[idx.flatten()], device=device,
                          batch_size=batch_size).view(len(samples), k)
    best, which = dist.min(1)
    return best, idx.gather(1, which[:, None]).squeeze(1)
