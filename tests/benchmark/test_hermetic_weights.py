"""The suite-wide ``hermetic_weights`` fixture (tests/conftest.py): no test reads the user's weight cache."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark import weights
from benchmark.weights import WeightRegistry, default_search_paths


def test_default_search_paths_are_temporary_and_empty(hermetic_weights):
    real_cache = Path(os.path.expanduser("~")) / ".cache"
    paths = default_search_paths()
    assert "GSBENCH_WEIGHTS" not in os.environ
    assert weights.user_weights_dir() == hermetic_weights and hermetic_weights in paths
    assert not any(real_cache in p.parents for p in paths), paths
    registry = WeightRegistry()
    for name in ("lpips-alexnet", "syncnet-v2"):
        assert registry.status(name)[0] == "missing"


def test_a_test_that_sets_home_gets_the_folder_under_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert weights.user_weights_dir() == tmp_path / ".cache" / "gsbench" / "weights"
