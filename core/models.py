"""The dataset index: typed SQLAlchemy 2.0 models.

Rows are never deleted for a user's image: statuses change and every change is logged in `Decision`, so it
can be undone. Ratings are derived from the stored `Comparison` rows and are not stored here.
The schema is created and changed only by the migrations in core/migrations/.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# Image statuses. `staged` images belong to a merge batch that is not committed yet and are not part of the dataset.
ACTIVE, REJECTED, DUPLICATE, STAGED = "active", "rejected", "duplicate", "staged"
IMAGE_STATUSES = (ACTIVE, REJECTED, DUPLICATE, STAGED)
UNLABELLED = "_unlabelled"  # the pages' name for images without a class (no class name starts with "_")

# Account roles, least first: each may do everything the ones before it may (core/auth.py says what needs which).
VIEWER, RANKER, CURATOR, ADMIN = "viewer", "ranker", "curator", "admin"
ROLES = (VIEWER, RANKER, CURATOR, ADMIN)


class ImageClass(db.Model):
    __tablename__ = "image_class"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    top_k: Mapped[Optional[int]] = mapped_column(Integer)  # how many images ranking should settle for this class
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    images: Mapped[list["Image"]] = relationship(back_populates="image_class")


class Batch(db.Model):
    """One import or merge: where it came from and what happened to each file (see BatchItem)."""
    __tablename__ = "batch"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # import | upload | demo | merge | generated
    source: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="committed")  # importing | interrupted | staged | committed | undone | discarded
    added: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    committed: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(Text, default="")

    items: Mapped[list["BatchItem"]] = relationship(back_populates="batch", order_by="BatchItem.id")


class Image(db.Model):
    __tablename__ = "image"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    pixel_hash: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    phash: Mapped[Optional[int]] = mapped_column(BigInteger)  # signed 64-bit perceptual hashes
    dhash: Mapped[Optional[int]] = mapped_column(BigInteger)
    fingerprint: Mapped[Optional[bytes]] = mapped_column(LargeBinary)  # small aligned thumbnail for near-dup checks
    path: Mapped[str] = mapped_column(String(255))  # relative to the instance folder
    format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    has_alpha: Mapped[bool] = mapped_column(Boolean, default=False)
    file_size: Mapped[int] = mapped_column(Integer)
    class_id: Mapped[Optional[int]] = mapped_column(ForeignKey("image_class.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE, index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    duplicate_of_id: Mapped[Optional[int]] = mapped_column(ForeignKey("image.id"))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)  # "neither belongs" while ranking: needs review
    selected: Mapped[bool] = mapped_column(Boolean, default=False)  # in the class's chosen top-k for snapshots
    original_filename: Mapped[str] = mapped_column(Text, default="")
    batch_id: Mapped[Optional[int]] = mapped_column(ForeignKey("batch.id"), index=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    image_class: Mapped[Optional[ImageClass]] = relationship(back_populates="images")
    batch: Mapped[Optional[Batch]] = relationship()
    duplicate_of: Mapped[Optional["Image"]] = relationship(remote_side=[id])

    __table_args__ = (Index("ix_image_phash", "phash"), Index("ix_image_class_status", "class_id", "status"))

    @property
    def class_name(self) -> str:
        return self.image_class.name if self.image_class else ""


class BatchItem(db.Model):
    """What happened to one file of a batch: added, duplicate (of which image), rejected (why), or, while a merge
    is staged, its proposed outcome and whether the user accepts it."""
    __tablename__ = "batch_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    filename: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))  # added | duplicate | near-duplicate | rejected | new
    reason: Mapped[str] = mapped_column(Text, default="")
    image_id: Mapped[Optional[int]] = mapped_column(ForeignKey("image.id"))  # the stored (or staged) image
    existing_id: Mapped[Optional[int]] = mapped_column(ForeignKey("image.id"))  # the image it duplicates
    distance: Mapped[Optional[int]] = mapped_column(Integer)
    source_class: Mapped[str] = mapped_column(String(255), default="")  # folder name in the source
    accepted: Mapped[Optional[bool]] = mapped_column(Boolean)

    batch: Mapped[Batch] = relationship(back_populates="items")
    image: Mapped[Optional[Image]] = relationship(foreign_keys=[image_id])
    existing: Mapped[Optional[Image]] = relationship(foreign_keys=[existing_id])


class Decision(db.Model):
    """Append-only log of every change a user makes; `before`/`after` hold what is needed to undo it."""
    __tablename__ = "decision"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # relabel | reject | restore | duplicate | batch-undo | select | ...
    image_id: Mapped[Optional[int]] = mapped_column(ForeignKey("image.id"), index=True)
    batch_id: Mapped[Optional[int]] = mapped_column(ForeignKey("batch.id"))
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    undo_of_id: Mapped[Optional[int]] = mapped_column(ForeignKey("decision.id"))
    undone_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("decision.id"))

    image: Mapped[Optional[Image]] = relationship(foreign_keys=[image_id])


class Comparison(db.Model):
    """One raw answer on one screen; ratings are recomputed from these. A pair answer names left and right and its
    outcome; an answer on a screen of several images ("pick the best") keeps the first two shown in left/right,
    the rest in `others` (screen order), and the picks, best first, in `picks`."""
    __tablename__ = "comparison"
    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("image_class.id"), index=True)
    left_id: Mapped[int] = mapped_column(ForeignKey("image.id"))
    right_id: Mapped[int] = mapped_column(ForeignKey("image.id"))
    outcome: Mapped[str] = mapped_column(String(8))  # left | right | tie | neither | best | order
    others: Mapped[Optional[list[int]]] = mapped_column(JSON)  # image ids shown after left and right
    picks: Mapped[Optional[list[int]]] = mapped_column(JSON)  # best | order: the picked image ids, best first
    actor: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)

    # The ranking cache's key check (latest live answer of a class) reads only this index.
    __table_args__ = (Index("ix_comparison_class_live", "class_id", "undone", "id"),)


class CalibrationLabel(db.Model):
    """A user's "same"/"different" verdict on a pair at a hash distance, for choosing their dedup threshold."""
    __tablename__ = "calibration_label"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_a_id: Mapped[int] = mapped_column(ForeignKey("image.id"))
    image_b_id: Mapped[int] = mapped_column(ForeignKey("image.id"))
    distance: Mapped[int] = mapped_column(Integer)
    same: Mapped[bool] = mapped_column(Boolean)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("image_a_id", "image_b_id"),)


class Snapshot(db.Model):
    """A frozen selection of images and its preprocessing; its manifest on disk is what training reads."""
    __tablename__ = "snapshot"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    image_size: Mapped[int] = mapped_column(Integer)
    fit: Mapped[str] = mapped_column(String(8))  # crop | pad
    background: Mapped[str] = mapped_column(String(16))  # a colour, or "alpha" to keep transparency
    selection: Mapped[str] = mapped_column(String(16), default="active")  # active | top-k
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    manifest: Mapped[str] = mapped_column(String(255))  # relative to the instance folder


class Run(db.Model):
    """A training run the web UI launched or queued; its live state lives in the run directory's files."""
    __tablename__ = "run"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    snapshot_id: Mapped[Optional[str]] = mapped_column(ForeignKey("snapshot.id"))
    device: Mapped[str] = mapped_column(String(16), default="auto")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    launched: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    pid: Mapped[Optional[int]] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    name: Mapped[Optional[str]] = mapped_column(String(80))  # human name (None: pages derive one from the id)


class Account(db.Model):
    """A person who logs in. Never deleted (their name stays on the answers and decisions it made): disabled.
    The table is "account", not "user", which PostgreSQL reserves."""
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)  # what Comparison.actor and Decision.actor hold
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, in its own encoded form (salt and cost)
    role: Mapped[str] = mapped_column(String(16), default=VIEWER)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class LoginFailure(db.Model):
    """One refused login, by account name and client address: the rate limit counts recent rows, so it holds
    across gunicorn workers and restarts."""
    __tablename__ = "login_failure"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)  # as typed (normalised), account or not
    address: Mapped[str] = mapped_column(String(64), index=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
