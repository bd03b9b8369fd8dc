"""Stage evaluate: every registered metric for model, identity and Reinhard → metrics/eval.json + grid."""

import sys
from pathlib import Path

from artshift import checkpoint, tracking
from artshift.config import load_params
from artshift.evaluation import evaluate, tracked_metrics
from artshift.files import atomic_files, write_json
from artshift.images import save_image
from artshift.metrics.weights import load_feature_extractor
from artshift.stage import run_stage

PROCESSED_DIR, FEATURE_CACHE = Path("data/processed"), Path("data/cache/features")
GENERATOR, RUN_REF = Path("models/generator.pt"), Path("models/run.json")
EVAL_JSON, GRID_PNG = Path("metrics/eval.json"), Path("reports/eval_grid.png")


def main() -> None:
    params = load_params()
    cfg = params.evaluate
    generator, record = checkpoint.load_generator(GENERATOR)
    # Opening the run checks the store first; the outputs replace the previous ones only after
    # everything is logged, so a failure (tracking included) leaves those.
    with (tracking.open_run(RUN_REF, params.tracking.required) as run,
          atomic_files({"json": EVAL_JSON, "grid": GRID_PNG}) as out):
        extractor = load_feature_extractor(cfg.inception_weights, cfg.resize, params.seed)
        report, grid = evaluate(generator, PROCESSED_DIR, extractor, cfg, params.seed, FEATURE_CACHE,
                                record["image_size"])
        write_json(out["json"], report)
        save_image(grid, out["grid"])

        run.log_params({"evaluate": cfg.model_dump()})
        run.log_metrics(tracked_metrics(report))
        run.set_tags({"eval.feature_extractor": report["feature_extractor"], "eval.resize": report["resize"]}
                     | ({"eval.style_extractor": report["style_extractor"]} if "style_extractor" in report else {}))
        run.log_artifact(out["json"], "eval")
        run.log_image(grid, key="eval_grid", step=record["step"])


if __name__ == "__main__":
    sys.exit(run_stage("evaluate", main))
