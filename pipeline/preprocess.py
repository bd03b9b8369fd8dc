"""Stage preprocess: decode, orient, convert, crop, dedupe and split data/raw into data/processed."""

import sys
from pathlib import Path

from artshift import tracking
from artshift.config import load_params
from artshift.data.layout import PROCESSED_MANIFEST, SKIPPED_LIST
from artshift.data.prepare import prepare_dataset
from artshift.stage import run_stage

RAW_DIR, PROCESSED_DIR = Path("data/raw"), Path("data/processed")


def main() -> None:
    params = load_params()
    cfg = params.preprocess
    # Fails here, before any work, if the store is unusable (or logs locally: tracking.required false).
    with tracking.data_run("preprocess", params.tracking.required) as run:
        run.log_params({"seed": params.seed, "preprocess": cfg.model_dump()})

        def record(folder: Path, summary: dict) -> None:  # before the new data/processed goes in
            run.log_summary(summary)
            run.log_artifact(folder / PROCESSED_MANIFEST)
            run.log_artifact(folder / SKIPPED_LIST)

        prepare_dataset(RAW_DIR, PROCESSED_DIR, cfg.load_size, cfg.test_fraction, cfg.min_size, params.seed,
                        before_swap=record)


if __name__ == "__main__":
    sys.exit(run_stage("preprocess", main))
