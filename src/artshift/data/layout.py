"""The on-disk folder layout of the data set: its domains, its splits and where each lives.

``data/raw`` holds one folder per domain (``<root>/<domain>``); ``data/processed`` holds one
per split and domain (``<root>/<split>/<domain>``). The download and preprocess stages write
these folders and training and evaluation read them, so the layout is asked for here, in one
place, instead of being spelled out by hand wherever a path is built.
"""

from __future__ import annotations

from pathlib import Path

DOMAINS = ("photos", "paintings")
SPLITS = ("train", "test")
RAW_MANIFEST = "manifest.json"  # in data/raw: source, counts, data set hash, provenance
PROCESSED_MANIFEST = "manifest.csv"  # in data/processed: one row per kept image
SKIPPED_LIST = "skipped.csv"  # in data/processed: one row per unused raw file, with the reason


def raw_folder(root: Path, domain: str) -> Path:
    """The folder of ``domain``'s images in a raw data set (``data/raw``): ``root/<domain>``."""
    return Path(root) / domain


def processed_folder(root: Path, split: str, domain: str) -> Path:
    """The folder of ``domain``'s ``split`` images in a processed data set (``data/processed``):
    ``root/<split>/<domain>``."""
    return Path(root) / split / domain
