"""Fixtures: one temporary instance folder per test, the real app on a real SQLite file."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any test imports torch

import pytest  # noqa: E402

from app import ROOT, create_app  # noqa: E402


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
    from core.db import db
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
