"""Data sets as whole uint8 tensors: train / val / test splits plus the statistics a model needs.

Every set ends as x uint8 (N, C, H, W) contiguous and y int64 (N,), so the loader can move a whole
split to the device once. The data root may be read-only, so anything derived (a built AddNIST,
decoded image folders) is cached under cache_dir(). Every failure a user can cause (unknown set,
missing or corrupt files, no network) is a DataError with one line naming the files and the folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from . import addnist

_DATASETS = ("addnist", "cifar100", "digits", "mnist")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR100_FILES = ("train", "test", "meta")
ADDNIST_SEED = 0            # fixed, so every run and every machine builds the same AddNIST
DIGITS_SIZE = 16            # pixels; the 8x8 digits upsampled so small conv nets have room to pool
DIGITS_TEST_FRACTION = 0.25  # stratified, seed 0, fixed across runs
FOLDER_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")  # what torchvision.io.decode_image reads
_CACHE_VERSION = 1          # bump when a cached format or a construction rule changes


@dataclass(frozen=True)
class DataSpec:
    name: str
    channels: int
    image_size: int                     # pixels, images are square
    num_classes: int
    mean: tuple[float, ...]             # per channel, of pixel/255, on the train split
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    train_size: int = 0                 # images in the train split; 0 where only the shapes are known


@dataclass
class Splits:
    spec: DataSpec
    train: tuple[Tensor, Tensor]        # x uint8 (N, C, H, W) contiguous, y int64 (N,)
    val: tuple[Tensor, Tensor]          # empty where data.val_fraction = 0 (training on the whole split)
    test: tuple[Tensor, Tensor]


def dataset_names() -> list[str]:  # kept, used by no command: budgetvision.data's public list (test_data)
    """Built-in data sets; load_splits also takes "folder:PATH" (ImageFolder layout, train/ and test/)."""
    return list(_DATASETS)


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "budgetvision"


def data_root(cli_value: str | None = None) -> Path:
    """--data-root, else $BUDGETVISION_DATA, else <user cache>/budgetvision/data."""
    if cli_value:
        return Path(cli_value).expanduser()
    if os.environ.get("BUDGETVISION_DATA"):
        return Path(os.environ["BUDGETVISION_DATA"]).expanduser()
    return _user_cache() / "data"


def cache_dir() -> Path:
    """$BUDGETVISION_CACHE, else <user cache>/budgetvision; where derived files go (the root may be read-only)."""
    if os.environ.get("BUDGETVISION_CACHE"):
        return Path(os.environ["BUDGETVISION_CACHE"]).expanduser()
    return _user_cache()


def _why(e: BaseException) -> str:
    """An exception as a short single-line reason, for the end of a DataError."""
    text = " ".join(str(e).split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# ---------------------------------------------------------------- caching

def _save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed .npz atomically; a cache that cannot be written is only a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        warnings.warn(f"could not cache {path.name} in {path.parent} ({_why(e)}); it will be rebuilt next time")


def _load_cache(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent or unreadable (then the caller rebuilds and overwrites)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _file_fingerprint(files) -> str:
    """Cheap identity of a set of files: paths, sizes and modification times, hashed."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- MNIST

def _load_mnist(root: Path, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """MNIST train and test as uint8 (n, 28, 28) and int64 labels, through torchvision."""
    import torchvision

    where = root / "MNIST" / "raw"
    hint = f"put {', '.join(MNIST_FILES)} (uncompressed) in {where}/"
    try:
        tr = torchvision.datasets.MNIST(str(root), train=True, download=download)
        te = torchvision.datasets.MNIST(str(root), train=False, download=download)
    except Exception as e:  # noqa: BLE001 - torchvision raises many types for missing, undownloadable or corrupt files
        raise DataError(f"MNIST could not be loaded ({_why(e)}): {hint}") from None
    out = []
    for ds, split in ((tr, "train"), (te, "test")):
        x, y = ds.data, ds.targets
        if x.dtype != torch.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),) \
                or len(x) == 0 or int(y.min()) < 0 or int(y.max()) > 9:
            raise DataError(f"MNIST {split} files in {where} are malformed "
                            f"(images {tuple(x.shape)}, labels {tuple(y.shape)}): {hint}")
        out += [x, y.to(torch.int64)]
    return tuple(out)


# ---------------------------------------------------------------- CIFAR-100

class _ArraysOnly(pickle.Unpickler):
    """Unpickles what the CIFAR pickles hold (dicts, lists, strings, numbers and numpy arrays) and
    nothing else: a plain pickle.load runs whatever code a crafted file names."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}   # bytes in a protocol-2 pickle written by Python 3

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR file never holds")
        return super().find_class(module, name)


def _unpickle(path: Path, keys: tuple[str, ...], hint: str) -> dict:
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # numpy 2 on numpy.core in old pickles
            d = _ArraysOnly(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, MemoryError, RecursionError) as e:
        raise DataError(f"CIFAR-100 file {path} is corrupt, truncated or not a CIFAR pickle ({_why(e)}): "
                        f"{hint}") from None
    if not isinstance(d, dict) or any(k not in d for k in keys):
        raise DataError(f"CIFAR-100 file {path} lacks {', '.join(keys)}: {hint}")
    return d


def _load_cifar100(root: Path, download: bool):
    folder = root / "cifar-100-python"
    hint = f"put {', '.join(CIFAR100_FILES)} (cifar-100-python.tar.gz, unpacked) in {folder}/"
    missing = [f for f in CIFAR100_FILES if not (folder / f).is_file()]
    if missing and download:
        import torchvision
        try:
            # torchvision is used only to fetch and unpack; its md5 checks would reject hand-made files
            torchvision.datasets.CIFAR100(str(root), train=True, download=True)
        except Exception as e:  # noqa: BLE001 - no network, read-only root, bad archive, ...
            raise DataError(f"CIFAR-100 is missing {', '.join(missing)} and could not be downloaded "
                            f"({_why(e)}): {hint}") from None
        missing = [f for f in CIFAR100_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"CIFAR-100 is missing {', '.join(missing)}: {hint}")
    names = _unpickle(folder / "meta", ("fine_label_names",), hint)["fine_label_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"CIFAR-100 file {folder / 'meta'} is malformed (fine_label_names is not a list of "
                        f"names): {hint}")
    names = tuple(n.decode("latin1") if isinstance(n, bytes) else n for n in names)
    parts = []
    for split in ("train", "test"):
        d = _unpickle(folder / split, ("data", "fine_labels"), hint)
        x, labels = d["data"], d["fine_labels"]
        x = x if isinstance(x, np.ndarray) else np.zeros((0, 0), np.uint8)
        ok = isinstance(labels, list) and all(type(v) is int and 0 <= v < len(names) for v in labels)
        y = np.asarray(labels if ok else [], dtype=np.int64)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or y.shape != (len(x),) \
                or len(x) == 0 or y.min() < 0 or y.max() >= len(names):
            raise DataError(f"CIFAR-100 file {folder / split} is malformed (data {x.shape} {x.dtype}, "
                            f"{y.shape[0]} labels, {len(names)} classes): {hint}")
        parts += [torch.from_numpy(x.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(y.astype(np.int64))]
    return (*parts, names)


# ---------------------------------------------------------------- AddNIST

def _load_addnist(root: Path, download: bool) -> addnist.AddNIST:
    folder = root / "addnist"
    present = [f for f in addnist.OFFICIAL_FILES if (folder / f).is_file()]
    if len(present) == len(addnist.OFFICIAL_FILES):
        return addnist.load_addnist_official(folder)
    if present:
        missing = [f for f in addnist.OFFICIAL_FILES if f not in present]
        raise DataError(f"AddNIST in {folder} is incomplete (missing {', '.join(missing)}): put all six "
                        f"official files there, or remove them to build AddNIST from MNIST in {root / 'MNIST' / 'raw'}/")
    raw = root / "MNIST" / "raw"
    keys = tuple(f"{s}_{k}" for s in addnist.SPLITS for k in ("x", "y", "src"))

    def cache_path() -> Path:
        fp = _file_fingerprint(raw / f for f in MNIST_FILES)
        sizes = "-".join(map(str, addnist.PER_CLASS))
        return cache_dir() / f"addnist-v{_CACHE_VERSION}-seed{ADDNIST_SEED}-{sizes}-{fp}.npz"

    have_mnist = all((raw / f).is_file() for f in MNIST_FILES)
    cached = _load_cache(cache_path(), keys) if have_mnist else None
    if cached is not None:
        t = {k: torch.from_numpy(v) for k, v in cached.items()}
        return addnist.AddNIST(*((t[f"{s}_x"], t[f"{s}_y"]) for s in addnist.SPLITS),
                               sources={s: t[f"{s}_src"] for s in addnist.SPLITS})
    try:
        mnist = _load_mnist(root, download)
    except DataError as e:
        raise DataError(f"AddNIST needs MNIST to be built: {e} (or put the official AddNIST files "
                        f"{', '.join(addnist.OFFICIAL_FILES)} in {folder}/)") from None
    built = addnist.build_addnist(*mnist, seed=ADDNIST_SEED, per_class=addnist.PER_CLASS)
    arrays = {}
    for s in addnist.SPLITS:
        x, y = getattr(built, s)
        arrays.update({f"{s}_x": x.numpy(), f"{s}_y": y.numpy(), f"{s}_src": built.sources[s].numpy()})
    _save_cache(cache_path(), arrays)  # after the load, so a just-downloaded MNIST has its fingerprint
    return built


# ---------------------------------------------------------------- scikit-learn digits

def _load_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy(d.images).float().unsqueeze(1) * (255.0 / 16.0)   # values 0..16 -> 0..255
    x = torch.nn.functional.interpolate(x, size=DIGITS_SIZE, mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8)
    y = torch.from_numpy(d.target.astype(np.int64))
    tr, te = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST_FRACTION, stratify=d.target, random_state=0)
    tr, te = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(te))
    return x[tr], y[tr], x[te], y[te], tuple(str(i) for i in range(10))


# ---------------------------------------------------------------- image folders

def _list_images(split_dir: Path, classes: list[str], skipped: list[str]) -> list[tuple[str, int]]:
    """(path, label) for every decodable image under split_dir/<class>/, recursively, in sorted order.
    Links to folders inside a class are not followed (a loop would repeat the class, a link to / scan
    the file system); they are added to `skipped`."""
    items = []
    for label, cls in enumerate(classes):
        d = split_dir / cls
        if not d.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(d):
            skipped += [os.path.join(dirpath, n) for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
            dirnames[:] = sorted(n for n in dirnames if not os.path.islink(os.path.join(dirpath, n)))
            for fn in sorted(filenames):
                if not fn.startswith(".") and fn.lower().endswith(FOLDER_SUFFIXES):
                    items.append((os.path.join(dirpath, fn), label))
    return items


def _folder_key(path: Path, classes: list[str], files: list[str]) -> str:
    """What decides a decoded folder: each file's path relative to the root (so its split and class)
    with its inode, size and modification and change times. `mv` keeps the mtime, so a key of the
    newest mtime alone served the old labels after two class folders swapped names; a rename moves
    the inode, and any write moves the change time, which no user can set back."""
    h = hashlib.sha256(json.dumps([str(path), classes]).encode())   # a label is its class's index
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, path)}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}\n".encode())
    return h.hexdigest()[:16]


_DECODE_CHUNK = 1024   # JPEGs per batched decode_jpeg call (one C++ loop instead of a Python one)


def _decode_all(files: list[str], folder: Path) -> list[Tensor]:
    """Decode every image once, as stored (grey, grey+alpha, RGB or RGBA). JPEGs go through
    torchvision's batched decode_jpeg; on a failure the chunk is retried one by one to name the file."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    def bad(f: str, e: Exception) -> DataError:
        return DataError(f"image {f} could not be decoded ({_why(e)}): replace or remove it from {folder}/")

    def one(f: str, data: Tensor) -> Tensor:
        try:
            return decode_image(data, mode=ImageReadMode.UNCHANGED)
        except Exception as e:  # noqa: BLE001 - torchvision raises RuntimeError or ValueError
            raise bad(f, e) from None

    def read(f: str) -> Tensor:
        try:
            return torch.from_numpy(np.fromfile(f, dtype=np.uint8))
        except OSError as e:
            raise bad(f, e) from None

    images: list[Tensor | None] = [None] * len(files)
    jpegs = [i for i, f in enumerate(files) if f.lower().endswith((".jpg", ".jpeg"))]
    with warnings.catch_warnings():
        # torchvision >= 0.29 flags its image codecs for a move to TorchCodec; they still work, and a
        # warning per call would bury the one useful line of a run
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        for start in range(0, len(jpegs), _DECODE_CHUNK):
            chunk = jpegs[start:start + _DECODE_CHUNK]
            data = [read(files[i]) for i in chunk]
            try:
                decoded = decode_jpeg(data, mode=ImageReadMode.UNCHANGED)
            except Exception:  # noqa: BLE001 - retried one by one below, to name the bad file
                decoded = [one(files[i], d) for i, d in zip(chunk, data)]
            for i, img in zip(chunk, decoded):
                images[i] = img
        for i, f in enumerate(files):
            if images[i] is None:
                images[i] = one(f, read(f))
    return images


def _to_common(img: Tensor, channels: int, side: int) -> Tensor:
    """One image to `channels` channels and a side x side square (shorter side resized, centre crop)."""
    from torchvision.transforms.v2 import functional as TF

    img = img[:1] if img.shape[0] == 2 else img[:3]           # drop alpha
    if img.shape[0] != channels:
        img = img.expand(channels, -1, -1)                    # grey -> RGB (RGB -> grey never: channels is the max)
    if img.shape[1:] != (side, side):
        img = TF.center_crop(TF.resize(img, side, antialias=True), [side, side])
    return img


def _decode_folder(path: Path, items: dict[str, list[tuple[str, int]]]) -> dict[str, Tensor]:
    files = [p for split in ("train", "test") for p, _ in items[split]]
    images = _decode_all(files, path)
    for f, img in zip(files, images):
        if img.ndim != 3 or img.dtype != torch.uint8 or img.shape[0] not in (1, 2, 3, 4):
            raise DataError(f"image {f} is not 8-bit grey or colour ({tuple(img.shape)} {img.dtype}): "
                            f"replace or remove it from {path}/")
    channels = 3 if any(img.shape[0] >= 3 for img in images) else 1
    h, w = Counter(tuple(img.shape[1:]) for img in images).most_common(1)[0][0]
    side = min(h, w)
    out, i = {}, 0
    for split in ("train", "test"):
        n = len(items[split])
        x = torch.stack([_to_common(img, channels, side) for img in images[i:i + n]]) if n else \
            torch.empty((0, channels, side, side), dtype=torch.uint8)
        out[f"{split}_x"] = x.contiguous()
        out[f"{split}_y"] = torch.tensor([lab for _, lab in items[split]], dtype=torch.int64)
        i += n
    return out


def _load_folder(spec: str, root: Path):
    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).is_dir():
        path = root / path          # "folder:NAME" may name a folder inside the data root
    path = path.resolve()
    layout = f"{path}/train/<class>/*.png|jpg and {path}/test/<class>/* (torchvision ImageFolder layout)"
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        raise DataError(f"folder data set {path} needs train/ and test/ subfolders: put images in {layout}")
    classes = sorted(d.name for d in (path / "train").iterdir() if d.is_dir() and not d.name.startswith("."))
    extra = sorted(d.name for d in (path / "test").iterdir()
                   if d.is_dir() and not d.name.startswith(".") and d.name not in classes)
    if extra:
        raise DataError(f"folder data set {path}: test classes {', '.join(extra)} have no train folder in {path / 'train'}/")
    skipped: list[str] = []
    items = {s: _list_images(path / s, classes, skipped) for s in ("train", "test")}
    if skipped:
        warnings.warn(f"folder data set {path}: {len(skipped)} link(s) to folders not followed "
                      f"(first: {skipped[0]}); copy their images in to use them")
    if not items["train"] or not items["test"]:
        raise DataError(f"folder data set {path} has no {'train' if not items['train'] else 'test'} images "
                        f"({', '.join(FOLDER_SUFFIXES)}): put images in {layout}")
    key = _folder_key(path, classes, [p for s in ("train", "test") for p, _ in items[s]])
    cache = cache_dir() / "folders" / f"{path.name or 'root'}-v{_CACHE_VERSION}-{key}.npz"
    keys = ("train_x", "train_y", "test_x", "test_y")
    cached = _load_cache(cache, keys)
    if cached is not None:
        t = {k: torch.from_numpy(v) for k, v in cached.items()}
    else:
        t = _decode_folder(path, items)
        _save_cache(cache, {k: v.numpy() for k, v in t.items()})
    return t["train_x"], t["train_y"], t["test_x"], t["test_y"], tuple(classes), f"folder:{path}"


# ---------------------------------------------------------------- splits and statistics

EVAL_DRAW_SEED = 0          # every evaluation subset of a split is this seed's draw: the same images in every run


def _quotas(counts: np.ndarray, quota: np.ndarray, total: int) -> np.ndarray:
    """Integer per-class counts summing to `total`, from fractional `quota`s by largest remainder."""
    k = np.floor(quota).astype(np.int64)
    k[np.argsort(-(quota - k), kind="stable")[:total - int(k.sum())]] += 1
    return np.minimum(k, counts)


def _pick(yn: np.ndarray, pool: np.ndarray, classes: np.ndarray, k: np.ndarray, seed: int) -> np.ndarray:
    """k[i] members of class classes[i] among `pool`, a seeded permutation within each class."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(pool[yn[pool] == c])[:kc] for c, kc in zip(classes, k)])


def carve_val(y: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Sorted (train, val) indices: a stratified val share of exactly round(n * fraction) samples.

    Per-class quotas are rounded by largest remainder, so the total is exact and every class keeps
    its train proportion; the choice within a class is a seeded permutation."""
    yn = y.numpy()
    n = len(yn)
    if fraction <= 0 or n == 0:
        return torch.arange(n), torch.empty(0, dtype=torch.int64)
    classes, counts = np.unique(yn, return_counts=True)
    k = _quotas(counts, counts * fraction, int(round(n * fraction)))
    val = _pick(yn, np.arange(n), classes, k, seed)
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return torch.from_numpy(np.flatnonzero(mask)), torch.from_numpy(np.sort(val))


def eval_draw(y: Tensor, n: int, *, seed: int = EVAL_DRAW_SEED, exclude: Tensor | None = None) -> Tensor:
    """Sorted indices of the n items of a split that evaluation reads: the whole split where n covers
    it, else a draw stratified by class (quotas by largest remainder, a seeded permutation within each
    class). Data sets on disk are often stored class by class, so the first n would hold a few
    classes. `exclude`: indices not to draw, for a second set disjoint from a first."""
    yn = y.cpu().numpy()
    pool = np.arange(len(yn))
    if exclude is not None:
        pool = np.setdiff1d(pool, exclude.cpu().numpy())
    if n >= len(pool):
        return torch.from_numpy(pool)
    classes, counts = np.unique(yn[pool], return_counts=True)
    k = _quotas(counts, counts * (n / len(pool)), n)
    return torch.from_numpy(np.sort(_pick(yn, pool, classes, k, seed)))


def eval_subset(split: tuple[Tensor, Tensor], n: int, *, exclude: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
    """(images, labels, indices) of `eval_draw` over a split's (x, y)."""
    idx = eval_draw(split[1], n, exclude=exclude)
    if len(idx) == len(split[1]):
        return split[0], split[1], idx
    return split[0].index_select(0, idx), split[1].index_select(0, idx), idx


DRAW_RULE = f"the whole split where n covers it, else stratified by class, seed {EVAL_DRAW_SEED}"


def draw_record(split: str, n_drawn: int, n_split: int) -> dict:
    """What an eval file records of the real images it compared against."""
    how = "the whole split" if n_drawn == n_split else f"stratified by class, seed {EVAL_DRAW_SEED}"
    return {"split": split, "n": n_drawn, "of": n_split, "draw": how}


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of pixel/255, from a 256-bin histogram per channel."""
    v = torch.arange(256, dtype=torch.float64) / 255.0
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    mean, std = [], []
    for c in range(x.shape[1]):
        h = torch.bincount(flat[c], minlength=256).to(torch.float64)
        m = float((h * v).sum() / h.sum())
        mean.append(m)
        std.append(float(((h * (v - m) ** 2).sum() / h.sum()).sqrt()))
    return tuple(mean), tuple(std)


def _check_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"data root {root} is a file, not a folder: pass a folder with --data-root or BUDGETVISION_DATA")


def load_splits(name: str, root: Path | None = None, *, val_fraction: float = 0.1, seed: int = 0,
                download: bool = True) -> Splits:
    """Load a data set as uint8 train / val / test tensors and its DataSpec.

    val is carved from train (stratified, `seed`), except for AddNIST, whose official valid split
    is used as it is; val_fraction 0 leaves train whole and val empty. The test split is never
    touched for selection."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root).expanduser() if root is not None else data_root()
    val = None
    if name.startswith("folder:"):
        xtr, ytr, xte, yte, names, name = _load_folder(name[len("folder:"):], root)
    elif name == "mnist":
        _check_root(root)
        xtr, ytr, xte, yte = _load_mnist(root, download)
        xtr, xte = xtr.unsqueeze(1), xte.unsqueeze(1)
        names = tuple(str(i) for i in range(10))
    elif name == "cifar100":
        _check_root(root)
        xtr, ytr, xte, yte, names = _load_cifar100(root, download)
    elif name == "addnist":
        _check_root(root)
        a = _load_addnist(root, download)
        (xtr, ytr), val, (xte, yte) = a.train, a.valid, a.test
        names = tuple(f"sum={c + 1}" for c in range(addnist.NUM_CLASSES))
    elif name == "digits":
        xtr, ytr, xte, yte, names = _load_digits()
    else:
        raise DataError(f"unknown data set '{name}': choose one of {', '.join(_DATASETS)}, or folder:PATH")
    if val is None:
        tr, va = carve_val(ytr, val_fraction, seed)
        val = (xtr[va].contiguous(), ytr[va])
        xtr, ytr = xtr[tr], ytr[tr]
    if len(xtr) == 0:
        raise DataError(f"data set {name} has no training images left after carving val_fraction={val_fraction}")
    mean, std = channel_stats(xtr)
    spec = DataSpec(name=name, channels=int(xtr.shape[1]), image_size=int(xtr.shape[2]),
                    num_classes=len(names), mean=mean, std=std, class_names=tuple(names), train_size=len(ytr))
    return Splits(spec, (xtr.contiguous(), ytr), val, (xte.contiguous(), yte))


def splits_of(cfg, root: Path | None = None) -> Splits:
    """The splits a run's DataConfig names: its data set, validation fraction and split seed (the
    one place a config becomes splits, so training, evaluation and judges carve the same ones)."""
    return load_splits(cfg.name, root, val_fraction=cfg.val_fraction, seed=cfg.split_seed)
