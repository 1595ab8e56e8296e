"""Shared fixtures. Tests that need the real development data find it through the data root
(`BUDGETVISION_TEST_DATA`, else `../shared/data` beside the repository) and skip, saying why,
where it is absent, so a fresh clone without it still passes."""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _shared_data_root() -> Path:
    return Path(os.environ.get("BUDGETVISION_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = _shared_data_root()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"real development data not found at {root} (set BUDGETVISION_TEST_DATA)")
    return root


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One CPU thread for the suite: on a small shared machine (CI has 2 cores) OpenMP and BLAS
    threads wait on each other (an Inception pass measured 5x, a batched eigh 100x slower with 2
    threads than with 1), and these tests check results, not speed."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    # The count is chosen, so the commands the tests run keep it rather than taking a share of the cores
    # (budgetvision.device.set_threads), and the processes they start inherit it.
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    with threadpool_limits(limits=1):
        yield
    if before is None:
        del os.environ["OMP_NUM_THREADS"]
    else:
        os.environ["OMP_NUM_THREADS"] = before


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes caches into its own temporary folder, never the user's."""
    monkeypatch.setenv("BUDGETVISION_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.manual_seed(0)
