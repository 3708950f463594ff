"""Shared test fixtures: the real-data samples beside the repository and small CPU settings."""
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = REPO_ROOT.parent / "shared" / "realdata"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def realdata_dir():
    """``../shared/realdata`` (read-only real COCO / AIC / MPII samples); skips when absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real-data samples not found at {REALDATA}")
    return REALDATA


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture
def single_thread():
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~50x slower.
    Modules use it with ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
