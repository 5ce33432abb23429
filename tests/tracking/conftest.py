"""Shared fixtures of the tracking tests: one ``gsbench-head`` build per session."""

from __future__ import annotations

import pytest

from tracking.head import build_default_head
from tracking.head_model import HeadModel


@pytest.fixture(scope="session")
def default_head() -> HeadModel:
    return build_default_head(seed=0)
