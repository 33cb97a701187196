"""Fixtures for the diffusion tests."""
from __future__ import annotations

from pathlib import Path

import pytest

import tests.diffusion.diffusion_helpers  # noqa: F401  (one torch thread for every diffusion test)
from tests.imagefiles import build_dataset


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """Three classes (red, green, blue) of 8 discs, 12 px: the `dataset` fixture's "discs", made once per session."""
    return build_dataset(tmp_path_factory.mktemp("tiny") / "data", {"red": 8, "green": 8, "blue": 8}, kind="discs")
