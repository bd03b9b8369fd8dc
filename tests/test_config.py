from pathlib import Path
from typing import get_args

import pytest
import yaml

from artshift.choices import DiffAugmentPolicy, GanLoss
from artshift.config import Params, load_params, parse_params
from artshift.errors import ParamsError
from artshift.models import METHODS


def test_repo_params_file_validates_and_round_trips():
    params = load_params("params.yaml")
    assert parse_params(params.model_dump()) == params  # effective values validate again unchanged


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_registered_method_is_accepted(method):
    assert parse_params({"train": {"method": method, "batch_size": 2}}).train.method == method


def test_allowed_values_come_from_the_registry_and_choices():
    assert get_args(Params.model_fields["train"].annotation.model_fields["method"].annotation) == tuple(METHODS)
    for value in get_args(GanLoss):
        assert parse_params({"train": {"gan_loss": value}}).train.gan_loss == value
    assert parse_params({"train": {"diffaugment": list(get_args(DiffAugmentPolicy))}})


def test_null_means_the_default():
    assert parse_params({"train": {"lr": None, "lambda_nce": None}}).train.lr == parse_params({}).train.lr
    assert parse_params({"train": {"method": "fastcut", "lambda_nce": None}}).train.lambda_nce == 10.0


def test_defaults_fill_missing_sections():
    params = parse_params({"seed": 3})
    assert params.seed == 3 and params.train.lr > 0 and params.export.opset >= 17


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"lr": -1}}, "train.lr: must be > 0.0, got -1"),
        ({"train": {"steps": 0}}, "train.steps: must be >= 1, got 0"),
        ({"preprocess": {"test_fraction": 1.0}}, "preprocess.test_fraction: must be < 1.0, got 1.0"),
        ({"train": {"lr": "fast"}}, "train.lr: input should be a valid number, got 'fast'"),
        ({"seed": 1.5}, "seed: input should be a valid integer, got 1.5"),
        ({"seed": 99999999999999999999999}, "seed: must be <= 4294967295, got 99999999999999999999999"),
        ({"train": {"learning_rate": 1}}, "train.learning_rate: unknown key"),
        ({"colour": 1}, "colour: unknown key"),
        ({"download": {"source": "ftp"}}, "download.source: input should be 'embedded', 'url' or 'local', got 'ftp'"),
        ({"download": {"source": "url"}}, "download.url: required when download.source is 'url'"),
        ({"download": {"source": "local"}}, "download.path: required when download.source is 'local'"),
        ({"download": {"sha256": "abc"}}, "download.sha256: must be 64 hex digits, got 3 characters"),
        ({"export": {"opset": 9}}, "export.opset: must be >= 17, got 9"),
        ({"train": {"method": "pix2pix"}},
         "train.method: input should be 'cut', 'fastcut', 'cyclegan', 'dcgan' or 'adain', got 'pix2pix'"),
        ({"train": {"method": "dcgan"}}, "train.batch_size: dcgan uses batch norm and needs >= 2, got 1"),
        ({"train": {"gan_loss": "relativistic"}},
         "train.gan_loss: input should be 'vanilla', 'lsgan', 'hinge' or 'wgan', got 'relativistic'"),
        ({"evaluate": {"resize": "nearest"}},
         "evaluate.resize: input should be 'pytorch-fid' or 'clean-fid', got 'nearest'"),
    ],
)
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ParamsError) as excinfo:
        parse_params(raw)
    assert str(excinfo.value) == message
    assert "\n" not in str(excinfo.value)


def test_file_errors(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(scalar)


def _load(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_params(path)


@pytest.mark.parametrize(("written", "value"), [("1e-4", 1e-4), ("2E-3", 2e-3), ("1.5e-4", 1.5e-4), ("3e+0", 3.0),
                                                ("0.0002", 2e-4), ("1.0e-4", 1e-4)])
def test_numbers_are_read_as_users_write_them(tmp_path, written, value):
    assert _load(tmp_path, f"train:\n  lr: {written}\n").train.lr == value


def test_quoted_numbers_stay_strings(tmp_path):
    with pytest.raises(ParamsError, match="train.lr: input should be a valid number, got '1e-4'"):
        _load(tmp_path, "train:\n  lr: '1e-4'\n")


def test_seed_is_bounded_and_the_bound_is_usable():
    from artshift.config import MAX_SEED
    from artshift.train import seed_everything

    assert parse_params({"seed": MAX_SEED}).seed == MAX_SEED
    seed_everything(MAX_SEED)  # the largest accepted seed seeds every RNG training uses


def test_duplicate_key_is_refused_with_its_line(tmp_path):
    with pytest.raises(ParamsError) as excinfo:
        _load(tmp_path, "seed: 0\ntrain:\n  lr: 0.1\n  steps: 5\n  lr: 0.2\n")
    assert str(excinfo.value) == (f"{tmp_path / 'params.yaml'}: not valid YAML at line 5, column 3: "
                                  "duplicate key 'lr' (first given at line 3)")


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    with pytest.raises(ParamsError) as excinfo:
        _load(tmp_path, "seed: 0\ntrain:\n  lr: [0.1\n  steps: 5\n")
    assert str(excinfo.value) == (f"{tmp_path / 'params.yaml'}: not valid YAML at line 4, column 8: "
                                  "expected ',' or ']', but got ':'")


def test_stage_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    import runpy

    params = yaml.safe_load(Path("params.yaml").read_text())
    params["train"]["lr"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    script = str(Path("pipeline/train.py").resolve())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as excinfo:
        runpy.run_path(script, run_name="__main__")
    assert excinfo.value.code == 2
    assert capsys.readouterr().err.strip() == "error: train.lr: must be > 0.0, got -1"
