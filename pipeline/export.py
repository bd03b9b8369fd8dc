"""Stage export: the generator as one ONNX file, checked for parity with PyTorch."""

import sys
from pathlib import Path

from artshift import checkpoint, tracking
from artshift.config import load_params
from artshift.errors import ArtShiftError
from artshift.export import export_generator, parity
from artshift.files import write_json
from artshift.log import get_logger
from artshift.stage import run_stage

GENERATOR, RUN_REF = Path("models/generator.pt"), Path("models/run.json")
ONNX_PATH, EXPORT_JSON = Path("models/generator.onnx"), Path("metrics/export.json")
PARITY_SIZES = [(64, 96), (128, 128)]
log = get_logger("export")


def main() -> None:
    params = load_params()
    generator, record = checkpoint.load_generator(GENERATOR)
    run = tracking.open_run(RUN_REF)
    metadata = {"run_id": run.run_id, "method": record.get("method", "cut"),
                "train_image_size": str(record.get("image_size", ""))}
    export_generator(generator, ONNX_PATH, params.export.opset, metadata)
    max_diff = parity(generator, ONNX_PATH, PARITY_SIZES, seed=params.seed)
    log.info("parity vs PyTorch: max abs diff %.2e (limit %.0e)", max_diff, params.export.parity_atol)
    if max_diff > params.export.parity_atol:
        ONNX_PATH.unlink()
        raise ArtShiftError(f"export: ONNX output differs from PyTorch by {max_diff:.2e} > export.parity_atol")
    write_json(EXPORT_JSON, {"fp32": {"max_abs_diff": max_diff}, "opset": params.export.opset})
    run.log_params({"export": params.export.model_dump()})
    run.log_metrics({"export/fp32_max_abs_diff": max_diff})
    run.log_artifact(ONNX_PATH, "onnx")


if __name__ == "__main__":
    sys.exit(run_stage("export", main))
