"""Stage export: the generator as ONNX (fp32, fp16, int8), checked, scored and registered."""

import json
import sys
from pathlib import Path

from artshift import checkpoint, registry, tracking
from artshift.config import load_params
from artshift.data.layout import processed_folder
from artshift.evaluation import score_onnx_models, style_network
from artshift.export import example_inputs, export_variants, input_example, quality_changes
from artshift.files import atomic_files, write_json
from artshift.log import get_logger
from artshift.metrics.weights import load_feature_extractor
from artshift.stage import run_stage

PROCESSED_DIR, FEATURE_CACHE = Path("data/processed"), Path("data/cache/features")
GENERATOR, RUN_REF = Path("models/generator.pt"), Path("models/run.json")
ONNX_PATHS = {"fp32": Path("models/generator.onnx"), "fp16": Path("models/generator.fp16.onnx"),
              "int8": Path("models/generator.int8.onnx")}
EVAL_JSON, EXPORT_JSON = Path("metrics/eval.json"), Path("metrics/export.json")
log = get_logger("export")


def main() -> None:
    params = load_params()
    cfg = params.export
    generator, record = checkpoint.load_generator(GENERATOR)
    photos, paintings = (processed_folder(PROCESSED_DIR, "train", domain) for domain in ("photos", "paintings"))
    # Opening the run checks the store first; the ONNX files and export.json replace the previous
    # ones only after the parity check, the scores, the logging and the registration all passed.
    with (tracking.open_run(RUN_REF, params.tracking.required) as run,
          atomic_files({**ONNX_PATHS, "report": EXPORT_JSON}) as out):
        method, digest = record.get("method", "cut"), registry.params_hash(params.model_dump(exclude={"tracking"}))
        metadata = {"run_id": run.run_id, "method": method, "params_hash": digest,
                    "train_image_size": str(record.get("image_size", ""))}
        onnx_paths = {variant: out[variant] for variant in ONNX_PATHS}
        calibration = example_inputs(generator, photos, cfg.calibration_images, params.seed, record["image_size"],
                                     paintings)
        report = export_variants(generator, onnx_paths, cfg.opset, calibration, metadata, cfg.parity_atol, params.seed)
        extractor = load_feature_extractor(params.evaluate.inception_weights, params.evaluate.resize, params.seed)
        scores = score_onnx_models(onnx_paths, PROCESSED_DIR, extractor, params.evaluate, params.seed, FEATURE_CACHE,
                                   record["image_size"], style_network(generator))
        for variant, values in quality_changes(scores).items():
            report[variant] |= values | {"size_mb": onnx_paths[variant].stat().st_size / 1e6}
        write_json(out["report"], {"opset": cfg.opset, "feature_extractor": extractor.label, "variants": report})

        run.log_params({"export": cfg.model_dump()})
        run.log_metrics({f"export/{variant}/{key}": value for variant, values in report.items()
                         for key, value in values.items()})
        for path in onnx_paths.values():
            run.log_artifact(path, "onnx")
        if cfg.register_model:
            tags = registry.version_tags(run.run_id, method, digest, json.loads(EVAL_JSON.read_text()))
            version = registry.log_and_register(run, onnx_paths["fp32"], input_example(calibration, generator.takes),
                                                generator.takes, tags)
            log.info("registered version %s: %s (make it the champion with `artshift promote %s`)", version,
                     registry.describe(tags), version)
    log.info("wrote %s", ", ".join(str(path) for path in [*ONNX_PATHS.values(), EXPORT_JSON]))


if __name__ == "__main__":
    sys.exit(run_stage("export", main))
