"""Shared test set-up: the data directory, and no network for anything under test."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Tests read the shared data beside the checkout unless DATA_DIR names another folder.
os.environ["DATA_DIR"] = str((ROOT / os.environ.get("DATA_DIR", "../shared/data")).resolve())
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
