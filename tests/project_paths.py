"""Where the project is, for tests that run its commands."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
