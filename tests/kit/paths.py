"""Where things are: the repository root, the tests folder and the shared/ folder."""

from __future__ import annotations

import os
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent


def shared_dir() -> Path:
    """The project's shared/ folder: a sibling of the repo root (or $BASTION_SHARED_DIR)."""
    override = os.environ.get("BASTION_SHARED_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared"
