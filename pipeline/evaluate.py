"""Stage evaluate: FID of the model vs the identity baseline → metrics/eval.json, reports/eval_grid.png."""

import sys
from pathlib import Path

from artshift import checkpoint, tracking
from artshift.config import load_params
from artshift.errors import run_main
from artshift.evaluation import evaluate
from artshift.files import write_json
from artshift.images import save_image
from artshift.metrics.inception import RANDOM_INIT_LABEL

PROCESSED_DIR = Path("data/processed")
GENERATOR, RUN_REF = Path("models/generator.pt"), Path("models/run.json")
EVAL_JSON, GRID_PNG = Path("metrics/eval.json"), Path("reports/eval_grid.png")


def main() -> None:
    params = load_params()
    generator, _ = checkpoint.load_generator(GENERATOR)
    report, grid = evaluate(generator, PROCESSED_DIR, params.evaluate.batch_size, params.seed)
    write_json(EVAL_JSON, report)
    save_image(grid, GRID_PNG)

    run = tracking.open_run(RUN_REF)
    run.log_params({"evaluate": params.evaluate.model_dump()})
    # Random-init features get a suffix so nobody compares them with published FIDs.
    suffix = "_random_init" if report["feature_extractor"].startswith(RANDOM_INIT_LABEL) else ""
    run.log_metrics({f"eval/{name}/fid{suffix}": report[name]["fid"] for name in ("model", "identity")})
    run.set_tags({"eval.feature_extractor": report["feature_extractor"]})
    run.log_artifact(EVAL_JSON, "eval")
    run.log_artifact(GRID_PNG, "eval")


if __name__ == "__main__":
    sys.exit(run_main(main))
