"""Typed, validated pipeline parameters: `params.yaml` is parsed here, once.

Every stage calls :func:`load_params`. A bad value stops the stage with one line naming the
full key, e.g. ``train.lr: must be > 0, got -1``. Allowed values come from
:mod:`artshift.choices` and, for ``train.method``, from the method registry
(:data:`artshift.models.METHODS`), which also supplies each method's defaults and checks.
A ``null`` value means "the default": the method's own if it sets one, else the field's.

The file is read as users write it and as DVC reads it: ``1e-4`` is a number (YAML 1.2; PyYAML's
YAML 1.1 would make it a string), a key given twice is refused with its line, and a syntax error
names its line and column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from artshift.choices import DiffAugmentPolicy, FidMethod, GanLoss, Precision, ResizeMode, Source
from artshift.device import is_device_spec
from artshift.errors import ParamsError
from artshift.models import METHODS


def _check_device(value: str) -> None:
    """Raise the "device: reason" error for a value no ``device`` param accepts."""
    if not is_device_spec(value):
        raise ValueError(f"device: must be auto, cpu, cuda or cuda:N, got {value!r}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DownloadParams(_Section):
    source: Source = "embedded"
    url: str = ""
    sha256: str = ""
    path: str = ""
    crops_per_photo: int = Field(12, ge=1)
    n_paintings: int = Field(120, ge=4)
    painting_size: int = Field(256, ge=32)
    retries: int = Field(4, ge=0)
    timeout_s: float = Field(30.0, gt=0)  # per network read
    deadline_s: float = Field(3600.0, gt=0)  # the whole download, retries included
    # Zip/gzip bomb guards on what one archive may extract (see artshift.data.archives.ExtractLimits).
    max_member_mb: int = Field(512, ge=1)
    max_extract_mb: int = Field(10240, ge=1)
    max_ratio: float = Field(100.0, ge=1)

    @model_validator(mode="after")
    def _source_needs(self) -> DownloadParams:
        if self.source == "url" and not self.url:
            raise ValueError("url: required when download.source is 'url'")
        if self.source == "local" and not self.path:
            raise ValueError("path: required when download.source is 'local'")
        if self.sha256 and len(self.sha256) != 64:
            raise ValueError(f"sha256: must be 64 hex digits, got {len(self.sha256)} characters")
        return self


class PreprocessParams(_Section):
    load_size: int = Field(128, ge=16, le=2048)  # side of the stored squares (shorter side scaled to it)
    test_fraction: float = Field(0.15, gt=0, lt=1)
    min_size: int = Field(64, ge=1)


class TrainParams(_Section):
    method: Literal[tuple(METHODS)] = "cut"
    gan_loss: GanLoss = "lsgan"
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(1, ge=1)
    lr: float = Field(2e-4, gt=0)
    lr_d: float = Field(0.0, ge=0)  # TTUR: the discriminator's own learning rate; 0 = same as lr
    lr_decay: bool = False  # linear decay to 0 over the second half of training (CycleGAN/CUT)
    r1_gamma: float = Field(0.0, ge=0)  # R1 penalty weight on real images; 0 = off
    gp_lambda: float = Field(10.0, ge=0)  # WGAN-GP weight, used with gan_loss wgan
    diffaugment: list[DiffAugmentPolicy] = Field(default_factory=list)
    ema: float = Field(0.0, ge=0, lt=1)  # decay of the generator's weight average; 0 = off
    spectral_norm: bool = False  # spectral normalisation on D's convolutions
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    ngf: int = Field(32, ge=4)
    ndf: int = Field(64, ge=4)
    n_blocks: int = Field(6, ge=1)
    antialias: bool = True  # blur-pool down- and bilinear upsampling in G and D (cut, fastcut, cyclegan)
    lambda_gan: float = Field(1.0, ge=0)
    lambda_content: float = Field(1.0, ge=0)  # adain: relu4_1 of the output vs the AdaIN target
    lambda_style: float = Field(10.0, ge=0)  # adain: VGG feature means and stds vs the style image's
    vgg_weights: str = ""  # adain: torchvision's vgg19-dcbb9e9d.pth; else searched, then downloaded
    lambda_nce: float = Field(1.0, ge=0)
    nce_idt: bool = True
    nce_layers: list[int] = Field(default_factory=lambda: [0, 4, 8, 11, 14])
    nce_t: float = Field(0.07, gt=0)
    num_patches: int = Field(256, ge=2)
    lambda_cycle: float = Field(10.0, ge=0)  # cyclegan: weight of each cycle-consistency L1 term
    lambda_idt: float = Field(0.5, ge=0)  # cyclegan: identity L1 weight, relative to lambda_cycle
    pool_size: int = Field(50, ge=0)  # cyclegan: generated images kept for the discriminators
    z_dim: int = Field(100, ge=1)  # dcgan: length of the noise vector
    minibatch_std: bool = False  # dcgan: D sees the batch's feature spread, which penalises collapse
    collapse_ratio: float = Field(0.2, ge=0, lt=1)  # warn when sample diversity < this × the paintings'
    log_every: int = Field(25, ge=1)
    sample_every: int = Field(250, ge=1)
    checkpoint_every: int = Field(250, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    n_samples: int = Field(6, ge=2)
    crop_size: int | None = Field(None, ge=8)  # random training crops of this side; null: preprocess.load_size
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda | cuda:N
    precision: Precision = "fp32"  # bf16 / fp16: forward passes under torch.autocast
    channels_last: bool = False  # NHWC memory format for networks and batches
    compile: bool = False  # torch.compile G and D
    num_workers: int = Field(0, ge=0)  # DataLoader worker processes decoding images
    gpus: int = Field(1, ge=1)  # > 1: one process per GPU under torchrun, DistributedDataParallel

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, raw: object) -> object:
        """Unset or ``null`` keys take the method's ``param_defaults`` (else the field default)."""
        if not isinstance(raw, dict):
            return raw
        name = raw.get("method", cls.model_fields["method"].default)
        method = METHODS.get(name) if isinstance(name, str) else None  # else the field's check names it
        defaults = method.param_defaults if method else {}
        return defaults | {key: value for key, value in raw.items() if value is not None}

    @model_validator(mode="after")
    def _method_needs(self) -> TrainParams:
        _check_device(self.device)
        METHODS[self.method].check_params(self)
        return self


class EvaluateParams(_Section):
    batch_size: int = Field(8, ge=1)
    inception_weights: str = ""  # a pt_inception-2015-12-05 .pth file; else searched, then downloaded
    resize: ResizeMode = "pytorch-fid"
    fid_method: FidMethod = "eigh"
    kid_subsets: int = Field(100, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    device: str = "auto"  # where the generator and Inception run: auto | cpu | cuda | cuda:N

    @model_validator(mode="after")
    def _device_spec(self) -> EvaluateParams:
        _check_device(self.device)
        return self


class ExportParams(_Section):
    opset: int = Field(18, ge=17, le=23)
    parity_atol: float = Field(1e-4, gt=0)
    calibration_images: int = Field(16, ge=1)
    register_model: bool = True


class TrackingParams(_Section):
    # A tracking server ($MLFLOW_TRACKING_URI) that is down or unreachable when a stage starts fails
    # the stage then; false: the stage logs to the project's local mlflow.db instead, with a warning.
    required: bool = True


# numpy's legacy global seed (np.random.seed, called by training) takes 0 .. 2**32 - 1, the
# narrowest range of the seeded RNGs (torch.manual_seed and default_rng take more).
MAX_SEED = 2**32 - 1


class Params(_Section):
    seed: int = Field(0, ge=0, le=MAX_SEED)
    download: DownloadParams = DownloadParams()
    preprocess: PreprocessParams = PreprocessParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    export: ExportParams = ExportParams()
    tracking: TrackingParams = TrackingParams()

    @model_validator(mode="after")
    def _crop_fits(self) -> Params:
        if self.train.crop_size is not None and self.train.crop_size > self.preprocess.load_size:
            raise ValueError(f"train.crop_size: must be <= preprocess.load_size ({self.preprocess.load_size}), "
                             f"got {self.train.crop_size}")
        try:
            METHODS[self.train.method].check_image_size(self.crop_size)
        except ValueError as exc:
            raise ValueError(f"train.{exc}") from None
        return self

    @property
    def crop_size(self) -> int:
        """The side of the images the networks train on: ``train.crop_size``, else the stored size."""
        return self.train.crop_size or self.preprocess.load_size


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _describe(error: dict) -> str:
    """One readable line for one pydantic error: full dotted key, then what is wrong."""
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if error["type"] == "value_error":
        # Cross-field checks raise "field: reason"; attach the field to the section's key.
        message = message.removeprefix("Value error, ")
        field, _, reason = message.partition(": ")
        key, message = (f"{key}.{field}" if key else field), reason
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] in _BOUNDS:
        (bound,) = error["ctx"].values()
        message = f"must be {_BOUNDS[error['type']]} {bound}, got {error['input']!r}"
    else:
        message = f"{message[0].lower()}{message[1:]}, got {error['input']!r}"
    return f"{key}: {message}"


def parse_params(raw: object) -> Params:
    """Validate a raw mapping (as loaded from YAML) into :class:`Params`.

    Raises :class:`ParamsError` whose message is one line naming the first bad key.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"params: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_describe(exc.errors()[0])) from None


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2 floats without a dot (``1e-4``) and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """Refuse a key that appears twice in one mapping (PyYAML would keep the last value)."""
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line {first_line[key]})", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 floats need a dot and a signed exponent (1.0e-4); YAML 1.2, and so DVC, also read 1e-4, 1E6.
ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                   re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                   list("-+0123456789"))


def _yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """One line for a YAML error: the file, the line and column of the problem, what is wrong."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{path}: not valid YAML{where}: {problem}"


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; the one entry point every stage uses."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=ParamsLoader)  # ParamsLoader is a SafeLoader
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(_yaml_error(path, exc)) from None
    if raw is None:  # a truncated or blanked file must not silently mean "every default"
        raise ParamsError(f"{path}: empty file (expected the pipeline's parameters, as in the repository's)")
    return parse_params(raw)
