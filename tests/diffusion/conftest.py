"""Fixtures for the diffusion tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from diffusion_helpers import make_image_folder


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("tiny") / "data")
