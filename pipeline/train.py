"""Stage train: open the model's MLflow run, train the GAN on data/processed, write its speed.

With ``train.gpus`` > 1 the script re-launches itself under torchrun, one process per GPU; only
rank 0 talks to MLflow and writes the stage's files.
"""

import sys
from pathlib import Path

from artshift import distributed, tracking
from artshift.config import load_params
from artshift.files import write_json
from artshift.stage import run_stage
from artshift.train import dataset_hash, train

PROCESSED_DIR, CHECKPOINT_DIR = Path("data/processed"), Path("models/checkpoints")
GENERATOR, RUN_REF = Path("models/generator.pt"), Path("models/run.json")
LOSS_CSV, TRAIN_JSON = Path("reports/train_loss.csv"), Path("metrics/train.json")


def main() -> None:
    params = load_params()
    distributed.launch(params.train.gpus, __file__)
    data_hash = dataset_hash(PROCESSED_DIR)
    if not distributed.current_world().is_main:  # the other processes only train
        train(params, PROCESSED_DIR, CHECKPOINT_DIR, GENERATOR, dataset_hash=data_hash)
        return
    # Opening the run checks the store before any work; train() logs everything before it writes
    # the generator and loss curve, and run.json is written last: a failure leaves the previous outputs.
    with tracking.start_model_run(params.model_dump(), run_name=f"{params.train.method}-{params.train.steps}",
                                  tags={"dataset_sha256": data_hash}, required=params.tracking.required) as run:
        result = train(params, PROCESSED_DIR, CHECKPOINT_DIR, GENERATOR, dataset_hash=data_hash, run=run,
                       loss_csv=LOSS_CSV)
        write_json(TRAIN_JSON, {"mlflow_run_id": run.run_id, "method": params.train.method, "steps": result.steps,
                                "resumed_from": result.resumed_from,
                                "seconds_per_1k_steps": 1000 * result.seconds_per_step,
                                "final_losses": result.losses})
        tracking.save_run_ref(run, RUN_REF)


if __name__ == "__main__":
    sys.exit(run_stage("train", main))
