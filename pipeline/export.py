"""Stage export: the generator as ONNX (fp32, fp16, int8), checked, scored and registered."""

import sys
from pathlib import Path

from artshift import checkpoint, tracking
from artshift.config import load_params
from artshift.data.layout import processed_folder
from artshift.evaluation import score_onnx_models, style_network
from artshift.export import example_inputs, export_variants, first_example, quality_changes
from artshift.files import write_json
from artshift.log import get_logger
from artshift.metrics.weights import load_feature_extractor
from artshift.stage import run_stage

PROCESSED_DIR, FEATURE_CACHE = Path("data/processed"), Path("data/cache/features")
GENERATOR, RUN_REF = Path("models/generator.pt"), Path("models/run.json")
ONNX_PATHS = {"fp32": Path("models/generator.onnx"), "fp16": Path("models/generator.fp16.onnx"),
              "int8": Path("models/generator.int8.onnx")}
EXPORT_JSON = Path("metrics/export.json")
log = get_logger("export")


def main() -> None:
    params = load_params()
    cfg = params.export
    generator, record = checkpoint.load_generator(GENERATOR)
    photos, paintings = (processed_folder(PROCESSED_DIR, "train", domain) for domain in ("photos", "paintings"))
    with tracking.open_run(RUN_REF) as run:
        metadata = {"run_id": run.run_id, "method": record.get("method", "cut"),
                    "train_image_size": str(record.get("image_size", ""))}
        calibration = example_inputs(generator, photos, cfg.calibration_images, params.seed, record["image_size"],
                                     paintings)
        report = export_variants(generator, ONNX_PATHS, cfg.opset, calibration, metadata, cfg.parity_atol, params.seed)
        extractor = load_feature_extractor(params.evaluate.inception_weights, params.evaluate.resize, params.seed)
        scores = score_onnx_models(ONNX_PATHS, PROCESSED_DIR, extractor, params.evaluate, params.seed, FEATURE_CACHE,
                                   record["image_size"], style_network(generator))
        for variant, values in quality_changes(scores).items():
            report[variant] |= values | {"size_mb": ONNX_PATHS[variant].stat().st_size / 1e6}
        write_json(EXPORT_JSON, {"opset": cfg.opset, "feature_extractor": extractor.label, "variants": report})

        run.log_params({"export": cfg.model_dump()})
        run.log_metrics({f"export/{variant}/{key}": value for variant, values in report.items()
                         for key, value in values.items()})
        for path in ONNX_PATHS.values():
            run.log_artifact(path, "onnx")
        if cfg.register_model:
            version = tracking.log_onnx_model(run, ONNX_PATHS["fp32"], first_example(calibration), generator.takes)
            log.info("registered MLflow model version %s", version)


if __name__ == "__main__":
    sys.exit(run_stage("export", main))
