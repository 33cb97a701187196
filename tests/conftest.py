"""Fixtures: one temporary instance folder per test, the real app on a real SQLite file."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from project_paths import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from app import create_app  # noqa: E402


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def app_config() -> dict:
    """Override in a test module to change settings; CSRF is checked by its own tests."""
    return {}


@pytest.fixture
def app(instance_path: Path, app_config: dict):
    config = {"TESTING": True, "WTF_CSRF_ENABLED": False, **app_config}
    app = create_app(config, instance_path=instance_path)
    yield app
    from curator.db import db
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def demo_images() -> Path:
    return ROOT / "demo" / "animal-emoji" / "images"
