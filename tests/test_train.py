import numpy as np
import pytest
import torch

from artshift import checkpoint
from artshift.config import parse_params
from artshift.errors import ParamsError
from artshift.train import train as train_into
from conftest import write_processed

TINY_TRAIN = {"ngf": 8, "ndf": 8, "n_blocks": 2, "nce_layers": [0, 4, 8], "num_patches": 16, "log_every": 1,
              "sample_every": 100, "checkpoint_every": 2, "keep_checkpoints": 2, "n_samples": 2}


@pytest.fixture
def data_dir(tmp_path):
    return write_processed(tmp_path, per_folder=3)


def train(params, data_dir, out):
    """Train with the stage's layout under ``out``: checkpoints/ and generator.pt."""
    return train_into(params, data_dir, out / "checkpoints", out / "generator.pt")


def _params(steps, **train):
    return parse_params({"seed": 0, "preprocess": {"load_size": 32}, "train": {**TINY_TRAIN, "steps": steps, **train}})


def test_writes_generator_and_keeps_last_checkpoints(data_dir, tmp_path):
    out = tmp_path / "models"
    result = train(_params(6), data_dir, out)
    assert result.steps == 6 and result.resumed_from == 0
    assert all(np.isfinite(v) for v in result.losses.values())
    assert [p.name for p in checkpoint.list_steps(out / "checkpoints")] == ["step_0000004.pt", "step_0000006.pt"]
    generator, record = checkpoint.load_generator(out / "generator.pt")
    assert record["arch"] == {"ngf": 8, "n_blocks": 2, "antialias": True} and record["step"] == 6
    assert generator(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_resume_continues_from_newest_valid_checkpoint(data_dir, tmp_path):
    out = tmp_path / "models"
    train(_params(6), data_dir, out)
    (out / "checkpoints" / "step_0000006.pt").write_bytes(b"truncated")  # damaged newest checkpoint
    result = train(_params(6, log_every=3), data_dir, out)  # bookkeeping params may change
    assert result.resumed_from == 4


def test_resume_matches_uninterrupted_run(data_dir, tmp_path):
    straight = tmp_path / "straight"
    train(_params(4), data_dir, straight)
    interrupted = tmp_path / "interrupted"
    train(_params(4, checkpoint_every=2), data_dir, interrupted)
    (interrupted / "checkpoints" / "step_0000004.pt").unlink()  # as if killed after step 2
    result = train(_params(4), data_dir, interrupted)
    assert result.resumed_from == 2
    a = checkpoint.load(straight / "generator.pt", "generator")["state_dict"]
    b = checkpoint.load(interrupted / "generator.pt", "generator")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_of_other_params_are_not_resumed(data_dir, tmp_path):
    out = tmp_path / "models"
    train(_params(4), data_dir, out)
    result = train(_params(4, lr=0.001), data_dir, out)
    assert result.resumed_from == 0


def test_bad_nce_layer_names_the_key(data_dir, tmp_path):
    with pytest.raises(ParamsError, match=r"train.nce_layers: indices must be in \[0, "):
        train(_params(2, nce_layers=[0, 99]), data_dir, tmp_path / "m")


@pytest.mark.parametrize("extra", [
    {"method": "fastcut", "gan_loss": "hinge", "ema": 0.9, "lr_decay": True},
    {"gan_loss": "wgan", "r1_gamma": 0.0, "diffaugment": ["color", "translation"], "spectral_norm": True,
     "lr_d": 0.0004},
    {"gan_loss": "vanilla", "r1_gamma": 1.0, "ema": 0.5},
    {"method": "cyclegan", "pool_size": 2, "lr_decay": True},  # the pool is full from step 2: resume needs it
    {"method": "dcgan", "batch_size": 2, "ema": 0.9, "z_dim": 8},  # batch-norm statistics in G and its EMA
])
def test_stabilised_variants_train_and_resume_exactly(data_dir, tmp_path, extra):
    straight = tmp_path / "straight"
    result = train(_params(4, **extra), data_dir, straight)
    assert all(np.isfinite(v) for v in result.losses.values())
    interrupted = tmp_path / "interrupted"
    train(_params(4, **extra), data_dir, interrupted)
    (interrupted / "checkpoints" / "step_0000004.pt").unlink()
    assert train(_params(4, **extra), data_dir, interrupted).resumed_from == 2
    a = checkpoint.load(straight / "generator.pt", "generator")
    b = checkpoint.load(interrupted / "generator.pt", "generator")
    assert a["ema"] == (extra.get("ema", 0) > 0)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def _weights(out):
    return checkpoint.load(out / "generator.pt", "generator")["state_dict"]


def test_loader_workers_do_not_change_the_run_and_resume_exactly(data_dir, tmp_path):
    train(_params(4), data_dir, tmp_path / "in_process")
    interrupted = tmp_path / "workers"
    train(_params(4, num_workers=2), data_dir, interrupted)
    assert all(torch.equal(a, b) for a, b in zip(_weights(tmp_path / "in_process").values(),
                                                  _weights(interrupted).values()))
    (interrupted / "checkpoints" / "step_0000004.pt").unlink()  # as if killed after step 2
    assert train(_params(4, num_workers=2), data_dir, interrupted).resumed_from == 2
    assert all(torch.equal(a, b) for a, b in zip(_weights(tmp_path / "in_process").values(),
                                                  _weights(interrupted).values()))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_resumes_exactly(data_dir, tmp_path, precision):
    extra = {"precision": precision, "r1_gamma": 1.0}
    straight = tmp_path / "straight"
    train(_params(4, **extra), data_dir, straight)
    # fp16 may log an overflowing (inf) term on a step the loss scaler then skips; weights stay finite.
    assert all(torch.isfinite(w).all() for w in _weights(straight).values())
    saved = checkpoint.load(straight / "checkpoints" / "step_0000004.pt", "train")["state"]["scaler"]
    assert ("scale" in saved) == (precision == "fp16")  # the fp16 loss scale is part of the checkpoint
    interrupted = tmp_path / "interrupted"
    train(_params(4, **extra), data_dir, interrupted)
    (interrupted / "checkpoints" / "step_0000004.pt").unlink()
    assert train(_params(4, **extra), data_dir, interrupted).resumed_from == 2
    assert all(torch.equal(a, b) for a, b in zip(_weights(straight).values(), _weights(interrupted).values()))
    fp32 = tmp_path / "fp32"
    train(_params(4, r1_gamma=1.0), data_dir, fp32)
    assert not all(torch.equal(a, b) for a, b in zip(_weights(fp32).values(), _weights(straight).values()))


def test_random_crops_smaller_than_the_stored_images(data_dir, tmp_path):
    result = train(_params(2, crop_size=24, channels_last=True), data_dir, tmp_path / "m")
    assert all(np.isfinite(v) for v in result.losses.values())
    generator, record = checkpoint.load_generator(tmp_path / "m" / "generator.pt")
    assert record["image_size"] == 24


def _train_with_curve(params, data_dir, out):
    return train_into(params, data_dir, out / "checkpoints", out / "generator.pt", loss_csv=out / "loss.csv")


def test_a_resumed_run_rewrites_the_whole_loss_curve(data_dir, tmp_path):
    """DVC deletes the stage's outputs before it runs: the history must come from the checkpoint."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    _train_with_curve(_params(4), data_dir, straight)
    _train_with_curve(_params(4), data_dir, interrupted)
    (interrupted / "checkpoints" / "step_0000004.pt").unlink()  # killed after step 2
    (interrupted / "loss.csv").unlink()
    assert _train_with_curve(_params(4), data_dir, interrupted).resumed_from == 2
    assert (interrupted / "loss.csv").read_text() == (straight / "loss.csv").read_text()
    assert len((straight / "loss.csv").read_text().splitlines()) == 5  # header + steps 1-4


def test_a_finished_run_rebuilds_every_output_without_training(data_dir, tmp_path):
    """Regression: `dvc repro -f` or a changed bookkeeping param after a finished run resumed at the
    last step, trained nothing and failed with 'reports/train_loss.csv does not exist'."""
    out = tmp_path / "m"
    first = _train_with_curve(_params(4), data_dir, out)
    curve = (out / "loss.csv").read_text()
    (out / "loss.csv").unlink()
    (out / "generator.pt").unlink()
    again = _train_with_curve(_params(4, log_every=2), data_dir, out)
    assert again.resumed_from == 4 and again.losses == first.losses
    assert first.seconds_per_step > 0
    assert again.seconds_per_step == pytest.approx(first.seconds_per_step, rel=0.5)  # kept, not 0
    assert (out / "loss.csv").read_text() == curve and (out / "generator.pt").is_file()


class _StoreLockedAt:
    """A tracking run whose store locks at ``step``: the run fails mid-training."""

    def __init__(self, step: int):
        self.step = step

    def log_metrics(self, metrics, step=None):
        from artshift.errors import TrackingError

        if step == self.step:
            raise TrackingError("tracking store sqlite:///mlflow.db: database is locked")

    def log_image(self, image, name):
        pass


def test_a_failed_run_leaves_the_previous_outputs(data_dir, tmp_path):
    """Regression: the loss curve was rewritten at every logged step, so a run failing mid-way had
    already replaced the previous curve."""
    out = tmp_path / "m"
    _train_with_curve(_params(2), data_dir, out)
    curve, generator = (out / "loss.csv").read_bytes(), (out / "generator.pt").read_bytes()
    from artshift.errors import TrackingError

    with pytest.raises(TrackingError):
        train_into(_params(4, lr=1e-3), data_dir, out / "checkpoints", out / "generator.pt", run=_StoreLockedAt(3),
                   loss_csv=out / "loss.csv")
    assert (out / "loss.csv").read_bytes() == curve and (out / "generator.pt").read_bytes() == generator
