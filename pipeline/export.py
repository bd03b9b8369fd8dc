"""Stage export: the generator as ONNX (fp32, fp16, int8), checked, scored and registered."""

import sys
from pathlib import Path

from artshift import checkpoint, tracking
from artshift.config import load_params
from artshift.data.dataset import load_folder
from artshift.errors import ArtShiftError
from artshift.evaluation import score_onnx_models
from artshift.export import export_fp16, export_generator, export_int8_generator, parity, parity_inputs
from artshift.files import write_json
from artshift.inference import noise
from artshift.log import get_logger
from artshift.metrics.weights import load_feature_extractor
from artshift.models.networks import DCGANGenerator
from artshift.stage import run_stage

PROCESSED_DIR, FEATURE_CACHE = Path("data/processed"), Path("data/cache/features")
GENERATOR, RUN_REF = Path("models/generator.pt"), Path("models/run.json")
ONNX_PATHS = {"fp32": Path("models/generator.onnx"), "fp16": Path("models/generator.fp16.onnx"),
              "int8": Path("models/generator.int8.onnx")}
EXPORT_JSON = Path("metrics/export.json")
log = get_logger("export")


def example_inputs(generator, count: int, seed: int):
    """What the model will see, for int8 calibration and the MLflow input example: training
    photos, or seeded noise for a DCGAN."""
    if isinstance(generator, DCGANGenerator):
        return noise(count, generator.z_dim, seed)
    return load_folder(PROCESSED_DIR / "train" / "photos", limit=count).numpy()


def main() -> None:
    params = load_params()
    cfg = params.export
    generator, record = checkpoint.load_generator(GENERATOR)
    run = tracking.open_run(RUN_REF)
    metadata = {"run_id": run.run_id, "method": record.get("method", "cut"),
                "train_image_size": str(record.get("image_size", ""))}
    export_generator(generator, ONNX_PATHS["fp32"], cfg.opset, metadata)
    export_fp16(ONNX_PATHS["fp32"], ONNX_PATHS["fp16"])
    export_int8_generator(generator, ONNX_PATHS["int8"], cfg.opset,
                          example_inputs(generator, cfg.calibration_images, params.seed), metadata)

    inputs = parity_inputs(generator, params.seed)
    report = {name: parity(generator, path, inputs) for name, path in ONNX_PATHS.items()}
    for name, diffs in report.items():
        log.info("%s vs PyTorch: max abs diff %.2e, mean %.2e", name, diffs["max_abs_diff"], diffs["mean_abs_diff"])
    if report["fp32"]["max_abs_diff"] > cfg.parity_atol:
        raise ArtShiftError(f"export: fp32 ONNX differs from PyTorch by {report['fp32']['max_abs_diff']:.2e} "
                            f"> export.parity_atol")
    extractor = load_feature_extractor(params.evaluate.inception_weights, params.evaluate.resize, params.seed)
    scores = score_onnx_models(ONNX_PATHS, PROCESSED_DIR, extractor, params.evaluate, params.seed, FEATURE_CACHE)
    for name, values in scores.items():
        for metric, change in (("kid_mean", "kid_change_vs_fp32"), ("content", "content_change_vs_fp32")):
            if metric in values:  # a DCGAN has no content score
                report[name][metric] = values[metric]
                report[name][change] = values[metric] - scores["fp32"][metric]
        report[name]["size_mb"] = ONNX_PATHS[name].stat().st_size / 1e6
    write_json(EXPORT_JSON, {"opset": cfg.opset, "feature_extractor": extractor.label, "variants": report})

    run.log_params({"export": cfg.model_dump()})
    run.log_metrics({f"export/{name}/{key}": value for name, values in report.items() for key, value in values.items()})
    for path in ONNX_PATHS.values():
        run.log_artifact(path, "onnx")
    if cfg.register_model:
        name = tracking.registered_name(metadata["method"])
        version = tracking.log_onnx_model(run, ONNX_PATHS["fp32"], example_inputs(generator, 1, params.seed), name)
        log.info("registered MLflow model %s version %s", name, version)


if __name__ == "__main__":
    sys.exit(run_stage("export", main))
