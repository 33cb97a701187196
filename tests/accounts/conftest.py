"""Fixtures for the accounts tests."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import db
from core.models import Image, ImageClass


@pytest.fixture
def cats(app, dataset):
    """Five distinct little cats and two dogs, imported in one batch: the cats' ids."""
    dataset({"cat": 5, "dog": 2}, size=16, imported="cli")
    with app.app_context():
        return list(db.session.scalars(select(Image.id).join(ImageClass).where(ImageClass.name == "cat")
                                       .order_by(Image.id)))
