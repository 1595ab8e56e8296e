"""Data sets, the AddNIST construction, the device-resident loader and the batched augmentations.

Real data comes from the `shared_data` fixture (skipped where absent); CIFAR-100 and image
folders are written here in their real formats, since the real files cannot be had offline."""
import pickle
import shutil
import subprocess
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from budgetvision.data import (BatchLoader, DataSpec, build_augment, cache_dir, data_root, dataset_names,
                               eval_batches, load_splits)
from budgetvision.data import augment as A
from budgetvision.data.addnist import (OFFICIAL_FILES, build_addnist, load_addnist_official,
                                       mnist_train_pools)
from budgetvision.config import AugmentConfig
from budgetvision.errors import ConfigError, DataError

SMALL = (50, 20, 10)    # AddNIST images per class for the fast builder tests
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session")
def mnist(shared_data):
    """Raw MNIST (train x, train y, test x, test y) as torchvision reads it."""
    tr = torchvision.datasets.MNIST(str(shared_data), train=True, download=False)
    te = torchvision.datasets.MNIST(str(shared_data), train=False, download=False)
    return tr.data, tr.targets, te.data, te.targets


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


# ---------------------------------------------------------------- names and folders

def test_dataset_names():
    assert dataset_names() == ["addnist", "cifar100", "digits", "mnist"]


def test_data_root_and_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("BUDGETVISION_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "budgetvision" / "data"
    monkeypatch.setenv("BUDGETVISION_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(str(tmp_path / "cli")) == tmp_path / "cli"
    monkeypatch.setenv("BUDGETVISION_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("BUDGETVISION_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "budgetvision"


# ---------------------------------------------------------------- MNIST

def test_mnist_from_shared_files(shared_data):
    s = load_splits("mnist", shared_data)
    (xtr, ytr), (xva, yva), (xte, yte) = s.train, s.val, s.test
    assert xtr.shape == (54_000, 1, 28, 28) and xva.shape == (6_000, 1, 28, 28) and xte.shape == (10_000, 1, 28, 28)
    assert xtr.dtype == torch.uint8 and ytr.dtype == torch.int64 and xtr.is_contiguous() and xva.is_contiguous()
    assert s.spec == DataSpec("mnist", 1, 28, 10, s.spec.mean, s.spec.std, tuple("0123456789"), train_size=54_000)
    assert s.spec.mean[0] == pytest.approx(0.1307, abs=1e-3) and s.spec.std[0] == pytest.approx(0.3081, abs=1e-3)
    # stratified: every class keeps its share of the train split in val
    share = torch.bincount(yva, minlength=10) / torch.bincount(torch.cat([ytr, yva]), minlength=10)
    assert torch.allclose(share, torch.full((10,), 0.1, dtype=share.dtype), atol=2e-3)
    again = load_splits("mnist", shared_data)
    assert torch.equal(again.val[0], xva)
    other = load_splits("mnist", shared_data, seed=1)
    assert not torch.equal(other.val[0], xva)
    assert torch.equal(other.test[0], xte)                   # the test split never depends on the seed


def test_truncated_mnist_is_one_clear_line(shared_data, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(shared_data / "MNIST" / "raw" / f, raw / f)
    (raw / "t10k-images-idx3-ubyte").write_bytes((raw / "t10k-images-idx3-ubyte").read_bytes()[:100_000])
    with pytest.raises(DataError) as e:
        load_splits("mnist", tmp_path, download=False)
    assert str(raw) in _one_line(e)


# ---------------------------------------------------------------- AddNIST

def test_build_addnist_follows_the_published_rules(mnist):
    xtr, ytr, xte, yte = mnist
    a = build_addnist(xtr, ytr, xte, yte, seed=0, per_class=SMALL)
    train_pool, valid_pool = mnist_train_pools(len(xtr), seed=0)
    assert len(train_pool) == 45_000 and len(valid_pool) == 15_000
    assert not np.intersect1d(train_pool, valid_pool).size
    for split, n, images, labels, pool in (("train", SMALL[0], xtr, ytr, train_pool),
                                           ("valid", SMALL[1], xtr, ytr, valid_pool),
                                           ("test", SMALL[2], xte, yte, np.arange(len(xte)))):
        x, y = getattr(a, split)
        src = a.sources[split]
        assert x.shape == (20 * n, 3, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
        assert torch.equal(torch.bincount(y, minlength=20), torch.full((20,), n))
        assert torch.equal(y, labels[src].sum(1) - 1)          # label = r + g + b - 1
        assert torch.equal(x, images[src])                      # every channel is that MNIST image
        assert np.isin(src.numpy(), pool).all()                 # digits only from their own pool
    assert not np.intersect1d(a.sources["train"].numpy(), a.sources["valid"].numpy()).size
    again = build_addnist(xtr, ytr, xte, yte, seed=0, per_class=SMALL)
    assert all(torch.equal(again.sources[s], a.sources[s]) for s in a.sources)
    assert torch.equal(again.train[0], a.train[0])
    assert not torch.equal(build_addnist(xtr, ytr, xte, yte, seed=1, per_class=SMALL).sources["train"],
                           a.sources["train"])


def test_addnist_built_by_load_splits_is_full_size_and_cached(shared_data):
    s = load_splits("addnist", shared_data)
    assert s.train[0].shape == (45_000, 3, 28, 28) and s.val[0].shape == (15_000, 3, 28, 28)
    assert s.test[0].shape == (10_000, 3, 28, 28)
    for (_, y), n in zip((s.train, s.val, s.test), (2250, 750, 500)):
        assert torch.equal(torch.bincount(y, minlength=20), torch.full((20,), n))
    assert s.spec.num_classes == 20 and s.spec.channels == 3 and len(s.spec.class_names) == 20
    assert list(cache_dir().glob("addnist-*.npz")), "the built AddNIST should be cached"
    cached = load_splits("addnist", shared_data)
    assert torch.equal(cached.train[0], s.train[0]) and torch.equal(cached.test[1], s.test[1])


def test_official_addnist_sample(shared_data, mnist):
    folder = shared_data / "addnist-official-sample"
    a = load_addnist_official(folder)
    index = {}
    for img, lab in zip(torch.cat([mnist[0], mnist[2]]), torch.cat([mnist[1], mnist[3]])):
        index.setdefault(img.numpy().tobytes(), set()).add(int(lab))
    for split in ("train", "valid", "test"):
        x, y = getattr(a, split)
        assert x.shape == (100, 3, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
        assert 0 <= int(y.min()) and int(y.max()) <= 19
        raw = np.load(folder / f"{split}_x.npy")
        np.testing.assert_allclose((x.numpy() / 255.0 - 0.1307) / 0.3081, raw, atol=1e-5)
        for img, label in zip(x, y):
            digit_sets = [index.get(img[c].numpy().tobytes()) for c in range(3)]
            assert all(digit_sets), "every channel is an exact MNIST image"
            assert any(r + g + b - 1 == int(label) for r in digit_sets[0] for g in digit_sets[1] for b in digit_sets[2])
    assert a.sources is None


def test_official_addnist_through_load_splits(shared_data, tmp_path):
    (tmp_path / "addnist").mkdir()
    for f in OFFICIAL_FILES:
        shutil.copy(shared_data / "addnist-official-sample" / f, tmp_path / "addnist" / f)
    s = load_splits("addnist", tmp_path, val_fraction=0.5)     # official valid split; val_fraction unused
    assert [len(p[0]) for p in (s.train, s.val, s.test)] == [100, 100, 100]
    (tmp_path / "addnist" / "test_y.npy").unlink()
    with pytest.raises(DataError) as e:
        load_splits("addnist", tmp_path)
    assert "test_y.npy" in _one_line(e) and str(tmp_path / "addnist") in str(e.value)


@pytest.mark.parametrize("damage", ["truncated", "wrong_shape", "not_normalised"])
def test_official_addnist_bad_files(shared_data, tmp_path, damage):
    for f in OFFICIAL_FILES:
        shutil.copy(shared_data / "addnist-official-sample" / f, tmp_path / f)
    x = np.load(tmp_path / "train_x.npy")
    if damage == "truncated":
        (tmp_path / "train_x.npy").write_bytes((tmp_path / "train_x.npy").read_bytes()[:5000])
    elif damage == "wrong_shape":
        np.save(tmp_path / "train_x.npy", x[:, :1])
    else:
        np.save(tmp_path / "train_x.npy", x * 0.5 + 0.01)
    with pytest.raises(DataError) as e:
        load_addnist_official(tmp_path)
    assert "train_x.npy" in _one_line(e) and str(tmp_path) in str(e.value)


# ---------------------------------------------------------------- CIFAR-100 in its real pickle format

def _write_cifar100(root: Path, n_train=300, n_test=100, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        d = {"filenames": [f"img_{i}.png" for i in range(n)], "batch_label": f"{split} batch",
             "fine_labels": rng.integers(0, 100, n).tolist(), "coarse_labels": rng.integers(0, 20, n).tolist(),
             "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        with open(folder / split, "wb") as f:
            pickle.dump(d, f)
        out[split] = d
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class_{i:02d}" for i in range(100)],
                     "coarse_label_names": [f"super_{i}" for i in range(20)]}, f)
    return out


def test_cifar100_from_official_pickles(tmp_path):
    raw = _write_cifar100(tmp_path)
    s = load_splits("cifar100", tmp_path, val_fraction=0.2, download=False)
    assert s.train[0].shape == (240, 3, 32, 32) and s.val[0].shape == (60, 3, 32, 32)
    assert s.test[0].shape == (100, 3, 32, 32) and s.test[0].dtype == torch.uint8
    assert s.spec.num_classes == 100 and s.spec.class_names[7] == "class_07" and s.spec.channels == 3
    # rows are R plane, G plane, B plane, each row-major: the official layout
    assert torch.equal(s.test[0][5], torch.from_numpy(raw["test"]["data"][5].reshape(3, 32, 32)))
    assert s.test[1].tolist() == raw["test"]["fine_labels"]
    together = torch.cat([s.train[1], s.val[1]]).sort().values
    assert torch.equal(together, torch.tensor(sorted(raw["train"]["fine_labels"])))
    pixels = torch.cat([s.train[0]]).double() / 255
    assert s.spec.mean == pytest.approx(tuple(pixels.mean((0, 2, 3)).tolist()), abs=1e-9)
    assert s.spec.std == pytest.approx(tuple(pixels.std((0, 2, 3), unbiased=False).tolist()), abs=1e-9)


def test_cifar100_corrupt_and_malformed_files(tmp_path):
    _write_cifar100(tmp_path)
    train = tmp_path / "cifar-100-python" / "train"
    train.write_bytes(train.read_bytes()[:1000])
    with pytest.raises(DataError) as e:
        load_splits("cifar100", tmp_path, download=False)
    assert str(train) in _one_line(e)
    with open(train, "wb") as f:
        pickle.dump({"data": np.zeros((10, 100), np.uint8), "fine_labels": [0] * 10}, f)
    with pytest.raises(DataError) as e:
        load_splits("cifar100", tmp_path, download=False)
    assert "malformed" in _one_line(e)


# ---------------------------------------------------------------- missing files, no network

def _no_network(self, *args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("name, cls, expect", [
    ("mnist", "MNIST", ["train-images-idx3-ubyte", "MNIST/raw"]),
    ("cifar100", "CIFAR100", ["meta", "cifar-100-python"]),
    ("addnist", "MNIST", ["train_x.npy", "addnist", "MNIST/raw"]),
])
def test_missing_files_without_network_is_one_clear_line(tmp_path, monkeypatch, name, cls, expect):
    monkeypatch.setattr(getattr(torchvision.datasets, cls), "download", _no_network)
    with pytest.raises(DataError) as e:
        load_splits(name, tmp_path / "data")
    msg = _one_line(e)
    assert all(s in msg for s in expect), msg
    with pytest.raises(DataError):
        load_splits(name, tmp_path / "data", download=False)


def test_unknown_set_and_root_that_is_a_file(tmp_path):
    with pytest.raises(DataError) as e:
        load_splits("imagenet", tmp_path)
    assert "addnist, cifar100, digits, mnist" in _one_line(e)
    f = tmp_path / "file"
    f.write_text("not a folder")
    for name in ("mnist", "cifar100", "addnist"):
        with pytest.raises(DataError) as e:
            load_splits(name, f)
        assert str(f) in _one_line(e)
    with pytest.raises(DataError):
        load_splits("mnist", tmp_path, val_fraction=1.0)


# ---------------------------------------------------------------- scikit-learn digits

def test_digits_offline(tmp_path):
    s = load_splits("digits", tmp_path / "nowhere", download=False)
    assert s.spec.num_classes == 10 and s.spec.channels == 1 and s.spec.image_size == 16
    assert s.test[0].shape == (450, 1, 16, 16) and len(s.train[0]) + len(s.val[0]) == 1797 - 450
    assert s.train[0].dtype == torch.uint8 and int(s.train[0].max()) == 255
    assert torch.equal(torch.bincount(s.test[1]).clamp(max=1), torch.ones(10, dtype=torch.int64))
    assert torch.equal(load_splits("digits").test[0], s.test[0])


def test_val_fraction_zero_trains_on_the_whole_split():
    """data.val_fraction = 0 (Jalil, Zavileiskii and Rzayev trained on the whole split): train keeps every
    training image, in stored order, val is empty, and the config accepts it."""
    from budgetvision.config import DataConfig
    from budgetvision.data import splits_of

    whole = splits_of(DataConfig(name="digits", val_fraction=0.0))
    held = load_splits("digits", val_fraction=0.1)
    assert len(whole.train[1]) == 1797 - 450 == whole.spec.train_size
    assert whole.val[0].shape == (0, 1, 16, 16) and len(whole.val[1]) == 0
    assert torch.equal(torch.cat([held.train[1], held.val[1]]).sort().values, whole.train[1].sort().values)
    assert held.spec.train_size == len(held.train[1]) == 1347 - 135
    assert torch.equal(whole.test[0], held.test[0])


# ---------------------------------------------------------------- image folders

def _png(path: Path, img: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = img.permute(1, 2, 0).numpy()
    Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).save(path)


def test_folder_of_pngs_mixed_sizes_and_channels(tmp_path):
    g = torch.Generator().manual_seed(0)
    root = tmp_path / "shapes"
    grey = {}
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("circle", "square"):
            for i in range(n):
                img = torch.randint(0, 256, (1, 12, 12), generator=g, dtype=torch.uint8)
                grey[(split, cls, i)] = img
                _png(root / split / cls / f"{i}.png", img)
    _png(root / "train" / "square" / "rgb.png", torch.randint(0, 256, (3, 10, 14), generator=g, dtype=torch.uint8))
    _png(root / "test" / "circle" / "alpha.png", torch.randint(0, 256, (4, 12, 12), generator=g, dtype=torch.uint8))
    (root / "train" / "circle" / "notes.txt").write_text("not an image")
    s = load_splits(f"folder:{root}", val_fraction=0.25)
    assert s.spec.name == f"folder:{root.resolve()}" and s.spec.class_names == ("circle", "square")
    assert s.spec.channels == 3 and s.spec.image_size == 12
    assert len(s.train[0]) + len(s.val[0]) == 13 and len(s.val[0]) == 3 and s.test[0].shape == (5, 3, 12, 12)
    assert s.test[1].tolist() == [0, 0, 0, 1, 1]                # 0.png, 1.png, alpha.png, then square
    assert torch.equal(s.test[0][0], grey[("test", "circle", 0)].expand(3, -1, -1))   # grey -> RGB exactly
    assert len(list((cache_dir() / "folders").glob("shapes-*.npz"))) == 1
    assert torch.equal(load_splits(f"folder:{root}", val_fraction=0.25).test[0], s.test[0])
    _png(root / "test" / "square" / "2.png", grey[("test", "square", 0)])
    assert len(load_splits(f"folder:{root}").test[0]) == 6     # a new file changes the fingerprint


def test_folder_of_real_jpegs(shared_data, tmp_path):
    tarball = shared_data / "cifar10-jpeg.tar.gz"
    if not tarball.exists() or shutil.which("tar") is None:
        pytest.skip("cifar10-jpeg.tar.gz or tar not available")
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(tmp_path), "--wildcards",
                    "cifar10-jpeg/train/*/000[0-4].jpg", "cifar10-jpeg/test/*/000[0-1].jpg"], check=True)
    s = load_splits(f"folder:{tmp_path / 'cifar10-jpeg'}", val_fraction=0.2)
    assert s.spec.channels == 3 and s.spec.image_size == 32 and s.spec.num_classes == 10
    assert s.spec.class_names[0] == "airplane" and s.test[0].shape == (20, 3, 32, 32)
    assert len(s.train[0]) == 40 and torch.equal(torch.bincount(s.val[1]), torch.ones(10, dtype=torch.int64))
    assert 0.3 < s.spec.mean[0] < 0.7


def test_folder_errors(tmp_path):
    (tmp_path / "a" / "train" / "x").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        load_splits(f"folder:{tmp_path / 'a'}")
    assert "test/" in _one_line(e)
    _png(tmp_path / "a" / "train" / "x" / "0.png", torch.zeros(1, 4, 4, dtype=torch.uint8))
    _png(tmp_path / "a" / "test" / "x" / "0.png", torch.zeros(1, 4, 4, dtype=torch.uint8))
    (tmp_path / "a" / "test" / "x" / "1.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError) as e:
        load_splits(f"folder:{tmp_path / 'a'}", val_fraction=0.0)
    assert "1.png" in _one_line(e)


# ---------------------------------------------------------------- loader

def _indexed(n: int):
    """Images whose first pixel encodes their index, labels equal to the index."""
    x = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return x, torch.arange(n)


def test_loader_covers_each_sample_once_per_epoch():
    x, y = _indexed(100)
    loader = BatchLoader(x, y, 10, mean=(0.0,), std=(1.0,), device="cpu", seed=0)
    assert len(loader) == 10
    epochs = [torch.cat([next(loader)[1] for _ in range(10)]) for _ in range(2)]
    for e in epochs:
        assert torch.equal(e.sort().values, y)
    assert not torch.equal(epochs[0], epochs[1])
    loader = BatchLoader(*_indexed(105), 10, mean=(0.0,), std=(1.0,), device="cpu", seed=0, drop_last=False)
    sizes = [len(next(loader)[1]) for _ in range(11)]
    assert sizes == [10] * 10 + [5] and len(loader) == 11
    loader = BatchLoader(*_indexed(105), 10, mean=(0.0,), std=(1.0,), device="cpu", seed=0)
    seen = torch.cat([next(loader)[1] for _ in range(10)])
    assert len(seen.unique()) == 100 and len(next(loader)[1]) == 10     # the 5 left over are dropped


def test_loader_normalises_and_keeps_order_without_shuffle():
    x = torch.randint(0, 256, (20, 3, 5, 5), dtype=torch.uint8)
    y = torch.arange(20)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    loader = BatchLoader(x, y, 8, mean=mean, std=std, device="cpu", seed=0, shuffle=False)
    xb, yb = next(loader)
    want = (x[:8].float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert xb.dtype == torch.float32 and torch.allclose(xb, want) and torch.equal(yb, y[:8])
    batches = list(eval_batches(x, y, 8, mean=mean, std=std, device="cpu"))
    assert [len(b[1]) for b in batches] == [8, 8, 4]
    assert torch.equal(torch.cat([b[1] for b in batches]), y) and torch.allclose(batches[0][0], want)


@pytest.mark.parametrize("device", DEVICES)
def test_loader_is_deterministic_and_resumes_exactly(tmp_path, device):
    x = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(50)
    aug = build_augment({"crop": 2, "hflip": 0.5, "jitter": 0.2, "noise": 0.05, "noise_p": 0.5, "cutout": 3})

    def make(seed=0):
        return BatchLoader(x, y, 16, mean=(0.5,) * 3, std=(0.25,) * 3, device=device, seed=seed, augment=aug)

    a, b = make(), make()
    for _ in range(4):
        (xa, ya), (xb, yb) = next(a), next(b)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(next(make(1))[0], next(make(0))[0])
    for _ in range(3):                      # 7 batches in: past an epoch boundary (3 per epoch)
        next(a)
    torch.save(a.state_dict(), tmp_path / "loader.pt")
    ahead = [next(a) for _ in range(5)]
    c = make()
    c.load_state_dict(torch.load(tmp_path / "loader.pt", weights_only=True))
    assert xa.device.type == device
    for xa, ya in ahead:
        xc, yc = next(c)
        assert torch.equal(xa, xc) and torch.equal(ya, yc)


def test_alternating_flip_mirrors_each_image_in_every_other_epoch(tmp_path):
    x = torch.randint(0, 256, (40, 1, 3, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(40)
    mirror = x.flip(-1)
    assert not (x == mirror).flatten(1).all(1).any()    # no image is its own mirror

    def make(**kw):
        return BatchLoader(x, y, 8, mean=(0.0,), std=(1 / 255,), device="cpu", seed=3, flip_alternate=True, **kw)

    def mirrored_by_epoch(loader, epochs=3):     # (epochs, 40) bool: was sample i served mirrored?
        out = torch.zeros(epochs, 40, dtype=torch.bool)
        for e in range(epochs):
            for _ in range(5):
                xb, yb = next(loader)
                xb = xb.round().to(torch.uint8)
                flipped = (xb == mirror[yb]).flatten(1).all(1)
                assert (flipped | (xb == x[yb]).flatten(1).all(1)).all()   # each image is itself or its mirror
                out[e, yb] = flipped
        return out

    m = mirrored_by_epoch(make())
    assert 0 < int(m[0].sum()) < 40                          # a random part of the split starts mirrored ...
    assert torch.equal(m[1], ~m[0]) and torch.equal(m[2], m[0])   # ... and every image flips each epoch
    a = make()
    for _ in range(7):                                       # into the second epoch
        next(a)
    torch.save(a.state_dict(), tmp_path / "loader.pt")
    b = make()
    b.load_state_dict(torch.load(tmp_path / "loader.pt", weights_only=True))
    for _ in range(6):
        assert torch.equal(next(a)[0], next(b)[0])
    ranks = [make(rank=r, world_size=2) for r in (0, 1)]     # the shards together are the one-process batch
    one = make()
    for _ in range(6):
        xb, _ = next(one)
        assert torch.equal(torch.cat([next(r)[0] for r in ranks]), xb)
    with pytest.raises(ConfigError, match="hflip_alternate"):
        AugmentConfig(hflip=0.5, hflip_alternate=True)
    assert "hflip_alternate" not in AugmentConfig(hflip_alternate=True).as_spec()


def test_loader_rejects_a_batch_larger_than_the_split():
    with pytest.raises(ConfigError):
        BatchLoader(*_indexed(5), 8, mean=(0.0,), std=(1.0,), device="cpu", seed=0)


# ---------------------------------------------------------------- augmentations

def _gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def _batch(c, b=32, size=16, seed=0, device="cpu"):
    return torch.rand(b, c, size, size, generator=_gen(seed)).to(device)


OPS = {
    "crop_zero": lambda x, g: A.random_crop(x, 3, g),
    "crop_reflect": lambda x, g: A.random_crop(x, 3, g, mode="reflect", p=0.7),
    "hflip": lambda x, g: A.hflip(x, 0.5, g),
    "vflip": lambda x, g: A.vflip(x, 0.5, g),
    "jitter": lambda x, g: A.color_jitter(x, 0.4, 0.4, 0.4, g),
    "noise": lambda x, g: A.gaussian_noise(x, 0.1, 0.7, g),
    "cutout": lambda x, g: A.cutout(x, 5, g),
    "affine": lambda x, g: A.random_affine(x, 15, 0.1, 2, g),
    "affine_per_channel": lambda x, g: A.random_affine(x, 15, 0.1, 2, g, per_channel=True),
    "randaugment": lambda x, g: A.rand_augment(x, 2, 9, g),
    "trivialaugment": A.trivial_augment,
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("op", sorted(OPS))
def test_augment_keeps_shape_dtype_range_and_is_reproducible(op, channels, device):
    x = _batch(channels, device=device)
    out = OPS[op](x, _gen(7, device))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out, OPS[op](x, _gen(7, device)))
    assert not torch.equal(out, x)
    assert not torch.equal(out, OPS[op](x, _gen(8, device)))


def test_crop_is_a_shifted_window():
    x = _batch(3, b=8, size=10)
    assert torch.equal(A.random_crop(x, 0, _gen()), x)
    out = A.random_crop(x, 2, _gen())
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for i in range(len(x)):
        assert any(torch.equal(out[i], padded[i, :, dy:dy + 10, dx:dx + 10]) for dy in range(5) for dx in range(5))
    assert torch.equal(A.random_crop(x, 2, _gen(), p=0.0), x)


@pytest.mark.parametrize("per_channel", [False, True])
def test_affine_is_torchvisions_affine_with_the_drawn_angle_zoom_and_shift(per_channel):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF
    x = _batch(3, b=4, size=20)
    out = A.random_affine(x, 20, 0.2, 3, _gen(5), per_channel=per_channel)
    planes = x.reshape(12, 1, 20, 20) if per_channel else x
    g, n = _gen(5), len(planes)
    angle, zoom, tx, ty = (torch.rand(n, generator=g) * (hi - lo) + lo
                           for lo, hi in ((-20, 20), (0.8, 1.2), (-3, 3), (-3, 3)))
    expected = torch.stack([TF.affine(planes[i], angle=float(angle[i]), translate=[float(tx[i]), float(ty[i])],
                                      scale=float(zoom[i]), shear=[0.0, 0.0],
                                      interpolation=InterpolationMode.BILINEAR) for i in range(n)])
    torch.testing.assert_close(out, expected.reshape(x.shape), atol=1e-5, rtol=0)
    if per_channel:   # three channels, three different transforms
        assert len({float(angle[i]) for i in range(3)}) == 3
    assert A.random_affine(x, 0, 0, 0, _gen()) is x


def test_flips_and_cutout():
    x = _batch(3)
    assert torch.equal(A.hflip(x, 1.0, _gen()), x.flip(-1)) and torch.equal(A.hflip(x, 0.0, _gen()), x)
    assert torch.equal(A.vflip(x, 1.0, _gen()), x.flip(-2)) and torch.equal(A.vflip(x, 0.0, _gen()), x)
    holes = (A.cutout(x + 0.5, 4, _gen()) == 0).all(1).sum((1, 2))
    assert (holes > 0).all() and (holes <= 16).all()


def test_auto_augment_groups_calls_by_op(monkeypatch):
    calls = []
    real = A._apply
    monkeypatch.setattr(A, "_apply", lambda op, x, m: calls.append(len(x)) or real(op, x, m))
    A.rand_augment(_batch(3, b=256), 2, 9, _gen())
    assert 2 * 14 <= len(calls) <= 2 * 23 and sum(calls) <= 2 * 256   # (op, sign) groups, not samples
    calls.clear()
    A.trivial_augment(_batch(1, b=256), _gen())
    assert len(calls) <= 23


def test_build_augment():
    spec = {"crop": 4, "hflip": 0.5, "vflip": 0.0, "jitter": 0.1, "noise": 0.05, "noise_p": 0.7, "cutout": 8,
            "randaugment": 2, "randaugment_magnitude": 9, "trivialaugment": False}
    aug = build_augment(spec)
    assert repr(aug) == ("Augment(crop(4, zero, p=1.0), hflip(0.5), randaugment(2, 9), jitter(0.1), "
                         "noise(0.05, p=0.7), cutout(8))")
    x = _batch(3)
    assert torch.equal(aug(x, _gen(3)), aug(x, _gen(3)))
    assert build_augment({}) is None and build_augment({"crop": 0, "hflip": 0.0, "trivialaugment": False}) is None
    for bad in ({"crops": 4}, {"hflip": 1.5}, {"noise": -0.1}, {"randaugment": 2, "trivialaugment": True}):
        with pytest.raises(ConfigError):
            build_augment(bad)
