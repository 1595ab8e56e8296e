"""FID, KID and Inception Score with the standard FID Inception network.

The network is torch-fidelity's `FeatureExtractorInceptionV3` (the class torchmetrics' FID, KID and
IS wrap) with the 2015-12-05 TF-ported weights, so numbers compare with pytorch-fid, torch-fidelity
and the papers. It is run once per image set for all three metrics: pool3 features (2048) feed FID
and KID, the unbiased logits (1008) feed IS. torchmetrics' own classes would each build and run a
network of their own, and its KID and IS cannot be given a weights file, so they get the features
through a pass-through module instead; FID is `frechet_distance` on float64 statistics.

Reference features of a (data set, split, n) are cached under `cache_dir()/fid-ref/`, keyed by the
weights file's hash as well, so other weights never reuse them.
"""
from __future__ import annotations

import functools
import hashlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..data import cache_dir
from ..errors import BudgetVisionError
from ..io import atomic_write_bytes

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's name for the weights
# torch-fidelity's copy of the same file (same sha256 prefix); its download lands under this name.
INCEPTION_FILES = (INCEPTION_FILE, "weights-inception-2015-12-05-6726825d.pth")
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")  # torch-fidelity's URL_INCEPTION_V3
FEATURES = ("2048", "logits_unbiased")   # pool3 for FID / KID, logits without bias for IS (as torch-fidelity)
KID_SUBSETS = 100                        # the KID paper's and torch-fidelity's defaults
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10
METRIC_SEED = 0                          # KID subsets and IS splits are random draws: fixed, so reruns agree
_REF_FORMAT = 1                          # bump when the cached reference file changes


# ---------------------------------------------------------------- weights

def find_weights(explicit: Path | None, *, names: tuple[str, ...], url: str, what: str, source: str,
                 option: str) -> Path:
    """An explicit file, else the torch hub cache (where the libraries download to) or
    `cache_dir()/weights`, else a download into the hub cache; failing all, one line of advice."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise BudgetVisionError(f"no {what} weights file at {path} (given with {option})")
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for folder in (hub, cache_dir() / "weights"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    target = hub / url.rsplit("/", 1)[-1]
    try:
        hub.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as e:  # no network, a proxy, a refused connection, a full disk: the same advice
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise BudgetVisionError(
            f"{what} needs the weights file {names[0]} ({source}), which is neither in {hub} nor in "
            f"{cache_dir() / 'weights'} and could not be downloaded ({reason}): copy it into {hub}/ "
            f"or pass {option} PATH") from None
    return target


def find_inception_weights(explicit: Path | None = None) -> Path:
    return find_weights(explicit, names=INCEPTION_FILES, url=INCEPTION_URL, what="FID/KID/IS",
                        source="the FID Inception released with pytorch-fid and torch-fidelity",
                        option="--inception-weights")


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered per (path, size, mtime) so a 92 MB file is hashed once a process."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def load_state_dict_file(path: Path, what: str) -> dict:
    """A plain state dict, loaded with weights_only=True; anything else is one clear line."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated files, foreign pickles, HTML error pages saved as .pth
        raise BudgetVisionError(f"{path} is not readable {what} weights ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise BudgetVisionError(f"{path} is not a state dict of {what} weights")
    return state


def load_inception(weights: Path, device) -> nn.Module:
    """torch-fidelity's FID Inception with `weights`, in eval mode on `device`."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # torch-fidelity unpickles its path with weights_only=False, so it never sees the file: it gets the
    # state dict loaded here once, checked, and saved again as plain tensors (a file swapped after a
    # check would be unpickled unchecked).
    state = load_state_dict_file(weights, "FID Inception")
    checked = io.BytesIO()
    torch.save(state, checked)
    checked.seek(0)
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", list(FEATURES),
                                          feature_extractor_weights_path=checked)
    except RuntimeError as e:
        raise BudgetVisionError(f"{weights} does not fit the FID Inception network: "
                                f"{str(e).splitlines()[0][:160]}") from None
    return net.to(device).eval()


# ---------------------------------------------------------------- features

def as_rgb(images: Tensor) -> Tensor:
    """Grey (N, 1, H, W) repeated to 3 channels; the Inception and LPIPS networks take RGB."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


@torch.no_grad()
def inception_features(net: nn.Module, images: Tensor, *, device, batch_size: int = 250,
                       progress: bool = False) -> tuple[Tensor, Tensor]:
    """uint8 (N, C, H, W) in [0, 255] -> pool3 features (N, 2048) and unbiased logits (N, 1008),
    float32 on the CPU. The network itself resizes to 299 as TF 1.x did (no antialiasing)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"want uint8 (N, 1 or 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
    pools, logits = [], []
    for i in tqdm(range(0, len(images), batch_size), desc="Inception features", unit="batch",
                  disable=not progress, leave=False):
        pool, logit = net(as_rgb(images[i:i + batch_size].to(device)).contiguous())
        pools.append(pool.float().cpu())
        logits.append(logit.float().cpu())
    return torch.cat(pools), torch.cat(logits)


def feature_stats(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (n - 1 denominator, as pytorch-fid) in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"feature statistics need at least 2 feature vectors, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians.

    With S1 = V V^T (LAPACK's pivoted Cholesky, V of S1's numerical rank r), S1 S2 has the
    nonzero eigenvalues of the symmetric PSD r x r matrix V^T S2 V, so tr (S1 S2)^(1/2) is the sum
    of square roots of its eigenvalues: no complex round-off from a general eigen-solver, no offset
    for singular covariances (n < dim) as scipy's sqrtm needs, and a factorisation whose cost
    falls with the rank instead of a 2048 x 2048 eigendecomposition."""
    from scipy.linalg.lapack import dpstrf
    from threadpoolctl import threadpool_limits

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = len(mu1)
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"mismatched shapes: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    # One BLAS thread: the same statistics give the same FID to the last digit on any machine
    # (threaded reductions change the summation order), and OpenBLAS threads spin-wait on shared
    # cores: measured 6x slower than one thread for a 2048-dimensional FID on 2 busy cores.
    with threadpool_limits(limits=1):
        # S1[piv][:, piv] = L L^T in L's first `rank` columns; LAPACK's default rank tolerance,
        # dim * eps * max(diag), treats smaller pivots as round-off of a singular matrix.
        c, piv, rank, info = dpstrf(s1, lower=1)
        if info < 0:
            raise ValueError(f"covariance not accepted by the pivoted Cholesky (LAPACK info {info})")
        factor = np.zeros((d, rank))
        factor[piv - 1] = np.tril(c)[:, :rank]
        inner = factor.T @ s2 @ factor
        eig = np.linalg.eigvalsh((inner + inner.T) / 2) if rank else np.zeros(0)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


class _Given(nn.Module):
    """Stands in for torchmetrics' feature network: its input already is the features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x.double()


def kernel_inception_distance(real: Tensor, fake: Tensor, *, subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = METRIC_SEED) -> tuple[float, float]:
    """KID (unbiased MMD^2, cubic polynomial kernel) mean and std over random subsets, through
    torchmetrics; the subset size shrinks to the smaller set when that has fewer images."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise BudgetVisionError(f"KID needs at least 2 images per set, got {len(real)} real and {len(fake)} generated")
    with warnings.catch_warnings():  # it warns that it keeps every feature: ours are already in memory
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def inception_score(logits: Tensor, *, splits: int = IS_SPLITS, seed: int = METRIC_SEED) -> tuple[float, float]:
    """IS mean and std over `splits` groups, through torchmetrics, from unbiased Inception logits."""
    from torchmetrics.image.inception import InceptionScore

    splits = max(1, min(splits, len(logits)))
    with warnings.catch_warnings():  # it warns that it keeps every feature: ours are already in memory
        warnings.simplefilter("ignore", UserWarning)
        metric = InceptionScore(feature=_Given(logits.shape[1]), splits=splits)
    metric.update(logits)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the std of a single split; replaced below
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std) if splits > 1 else 0.0  # one split has no spread (torch would say nan)


# ---------------------------------------------------------------- reference statistics

def reference_path(dataset: str, split: str, n: int, weights_sha256: str, split_key: str = "") -> Path:
    """Cache file of a (data set, split, n, weights) reference; folder data sets by their spec's hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset)[:40]
    if safe != dataset:
        safe += "-" + hashlib.sha256(dataset.encode()).hexdigest()[:8]
    return (cache_dir() / "fid-ref" /
            f"{safe}-{split}{split_key}-n{n}-inception-{weights_sha256[:16]}-v{_REF_FORMAT}.npz")


def _read_reference(path: Path, n: int) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            ref = {k: z[k] for k in ("features", "mu", "sigma")}
    except (OSError, ValueError, KeyError, EOFError):
        return None  # a damaged cache is rebuilt, not trusted
    return ref if ref["features"].shape == (n, 2048) and ref["sigma"].shape == (2048, 2048) else None


def reference_statistics(images: Tensor, *, path: Path, net: nn.Module | None, weights: Path, device,
                         batch_size: int = 250, progress: bool = False) -> tuple[dict, bool]:
    """{"features" (n, 2048) float32, "mu", "sigma" float64} of real images, from the cache at `path`
    or computed and cached (mu and sigma under pytorch-fid's .npz names). Returns (stats, was_cached)."""
    cached = _read_reference(path, len(images))
    if cached is not None:
        return cached, True
    net = net if net is not None else load_inception(weights, device)
    features, _ = inception_features(net, images, device=device, batch_size=batch_size, progress=progress)
    mu, sigma = feature_stats(features)
    ref = {"features": features.numpy(), "mu": mu, "sigma": sigma}
    buf = io.BytesIO()
    np.savez(buf, **ref)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:  # an unwritable cache costs time next run, not this result
        warnings.warn(f"could not cache FID reference statistics at {path} ({e.strerror}); "
                      f"they will be recomputed next time")
    return ref, False
