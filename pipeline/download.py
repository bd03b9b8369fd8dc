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
    # Fails here, before any work, if the store is unusable (or logs locally: tracking.required false).
    with tracking.data_run("download", params.tracking.required) as run:
        run.log_params({"seed": params.seed, "download": params.download.model_dump()})

        def record(folder: Path, summary: dict) -> None:  # before the new data/raw goes in
            run.log_summary(summary)
            run.log_artifact(folder / RAW_MANIFEST)

        fetch_dataset(params.download, params.seed, RAW_DIR, DOWNLOADS_DIR, before_swap=record)


if __name__ == "__main__":
    sys.exit(run_stage("download", main))
