"""Stage download: fetch photos and paintings into data/raw/ (embedded, url or local)."""

import sys
from pathlib import Path

from artshift import tracking
from artshift.config import load_params
from artshift.data.layout import RAW_MANIFEST
from artshift.data.sources import fetch_dataset
from artshift.stage import run_stage

RAW_DIR = Path("data/raw")
DOWNLOADS_DIR = Path("data/downloads")  # archive cache of the url source, outside RAW_DIR


def main() -> None:
    params = load_params()
    with tracking.data_run("download") as run:
        run.log_params({"seed": params.seed, "download": params.download.model_dump()})
        summary = fetch_dataset(params.download, params.seed, RAW_DIR, DOWNLOADS_DIR)
        run.log_summary(summary)
        run.log_artifact(RAW_DIR / RAW_MANIFEST)


if __name__ == "__main__":
    sys.exit(run_stage("download", main))
