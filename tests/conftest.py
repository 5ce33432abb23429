"""Suite-wide test settings: `gpu` tests skip without CUDA; no test may touch the user's weight cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (gpu marker)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def hermetic_weights(tmp_path_factory, monkeypatch) -> Path:
    """Every test sees an empty weight registry unless it registers files itself.

    ``benchmark.weights`` looks in ``$GSBENCH_WEIGHTS``, the user folder ``~/.cache/gsbench/weights`` and
    ``$TORCH_HOME/hub/checkpoints``: the variable is removed, ``TORCH_HOME`` points at an empty temporary
    folder, and the user folder of the real home is replaced by an empty temporary one (a test that sets
    ``HOME`` itself gets the folder under that ``HOME``, as the code computes it). ``HOME`` itself is kept:
    the compiled-kernel caches under it are shared by every test. Returns the temporary user folder.
    """
    import benchmark.weights as weights

    root = tmp_path_factory.mktemp("hermetic-weights")
    user_folder = root / "user"
    real_home = Path(os.path.expanduser("~"))
    real_user_weights_dir = weights.user_weights_dir

    def user_weights_dir() -> Path:
        if Path(os.path.expanduser("~")) == real_home:
            return user_folder
        return real_user_weights_dir()

    monkeypatch.delenv("GSBENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setattr(weights, "user_weights_dir", user_weights_dir)
    return user_folder
