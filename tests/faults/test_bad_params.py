"""Bad params, generated from the pydantic model in artshift.config (no hand-written list to fall
behind): every field with a wrong type and with a value out of its range, an unknown key in every
section, an empty file, YAML syntax errors. Each is one line that names the key or the line. And a
training image side the method's networks cannot train on: refused exactly where a training step
would fail (tried at every side from 8 to 33), naming the smallest side that works."""

from __future__ import annotations

import annotated_types as at
import pytest
import torch
import yaml

from artshift.config import Params, load_params, parse_params
from artshift.errors import ParamsError
from artshift.models import METHODS
from artshift.train import TrainState, train_step

SECTIONS = {name: field.annotation for name, field in Params.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, Params.__base__)}


def fields():
    """(dotted key, pydantic FieldInfo) of every leaf param."""
    for name, info in Params.model_fields.items():
        if name in SECTIONS:
            yield from ((f"{name}.{sub}", sub_info) for sub, sub_info in SECTIONS[name].model_fields.items())
        else:
            yield name, info


def raw_with(key: str, value: object) -> dict:
    """A params mapping that sets only ``key`` (dotted) to ``value``."""
    section, _, leaf = key.rpartition(".")
    return {section: {leaf: value}} if section else {leaf: value}


def out_of_range(info) -> list[object]:
    """Values just outside each bound the field declares (Field(ge=, gt=, le=, lt=))."""
    is_int = info.annotation is int or info.annotation == (int | None)
    step = 1 if is_int else 0.5
    values = []
    for bound in info.metadata:
        if isinstance(bound, at.Ge):
            values.append(bound.ge - step)
        elif isinstance(bound, at.Gt):
            values.append(bound.gt)
        elif isinstance(bound, at.Le):
            values.append(bound.le + step)
        elif isinstance(bound, at.Lt):
            values.append(bound.lt)
    return values


def wrong_types(info) -> list[object]:
    """Values of a type the field does not take: a mapping always, and text or a number."""
    takes_text = "str" in repr(info.annotation) or "Literal" in repr(info.annotation)
    return [{"a": 1}, 7 if takes_text else "seven"]


CASES = [(key, value, "type") for key, info in fields() for value in wrong_types(info)] + \
        [(key, value, "range") for key, info in fields() for value in out_of_range(info)]


def test_the_cases_cover_every_field_and_every_bound():
    """Params: the generated cases cover every field"""
    keys = {key for key, _ in fields()}
    assert {key for key, _, kind in CASES if kind == "type"} == keys and len(keys) > 60
    assert sum(kind == "range" for _, _, kind in CASES) > 40


@pytest.mark.parametrize(("key", "value", "kind"), CASES, ids=[f"{k}={v!r}" for k, v, _ in CASES])
def test_every_field_with_a_bad_value_names_its_key(key, value, kind):
    """Params: every field with a wrong type or an out-of-range value"""
    with pytest.raises(ParamsError) as excinfo:
        parse_params(raw_with(key, value))
    message = str(excinfo.value)
    assert message.startswith(f"{key}: ") and "\n" not in message
    assert repr(value) in message


@pytest.mark.parametrize("section", ["", *SECTIONS])
def test_an_unknown_key_in_every_section_is_named(section):
    """Params: an unknown key in every section"""
    key = f"{section}.no_such_key" if section else "no_such_key"
    with pytest.raises(ParamsError, match=f"^{key}: unknown key$"):
        parse_params(raw_with(key, 1))


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_an_empty_file_is_refused_naming_it(tmp_path, text):
    """Params: an empty file"""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=f"^{path}: empty file"):
        load_params(path)


@pytest.mark.parametrize(("text", "line"), [
    ("seed: 0\ntrain:\n  lr: [0.1\n  steps: 5\n", 4),
    ("seed: 0\ntrain:\n\tlr: 0.1\n", 3),
    ("seed: 0\ntrain:\n  lr: 0.1\n    steps: 5\n", 4),
    ("seed: 0\ntrain: {lr: 0.1\n", 3),
    ("seed: 0\ntrain:\n  lr: 'open\n", 4),
])
def test_yaml_syntax_errors_name_the_line(tmp_path, text, line):
    """Params: YAML syntax errors"""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=f"^{path}: not valid YAML at line {line}, column \\d+: ") as excinfo:
        load_params(path)
    assert "\n" not in str(excinfo.value)


def test_the_repository_params_survive_a_round_trip_through_yaml(tmp_path):
    """Params: the shipped params.yaml validates after a YAML round trip"""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(load_params("params.yaml").model_dump()))
    assert load_params(path) == load_params("params.yaml")


TINY_NETS = {"ngf": 4, "ndf": 4, "n_blocks": 1, "nce_layers": [0, 4], "num_patches": 4, "batch_size": 2,
             "pool_size": 0}  # no CycleGAN history: its images of one side would not mix with the next
SIZES = range(8, 34)  # past every minimum (24) and two multiples of 8


def trains_on(method: str, antialias: bool, sizes: range) -> dict[int, bool]:
    """Whether one real training step of ``method`` runs at each side in ``sizes`` and gives images of
    that side (a translator whose output has another size is no use, even when no loss notices)."""
    params = parse_params({"train": {**TINY_NETS, "method": method, "antialias": antialias}})
    torch.manual_seed(0)
    state, works = None, {}
    for size in sizes:
        try:
            if state is None or method == "dcgan":  # DCGAN's networks are built for one size; the others take any
                state = TrainState.create(params, torch.Generator().manual_seed(0), size)
            photos, paintings = torch.rand(2, 2, 3, size, size) * 2 - 1
            train_step(state, photos, paintings, 1)
            fake = state.model.generate(photos, paintings, state.rng)["fake_b"]
            works[size] = fake.shape[-2:] == photos.shape[-2:]
        except (ValueError, RuntimeError, ParamsError):  # a 1×1 map to normalise, a pad wider than its map
            works[size] = False
    return works


def test_a_crop_too_small_for_the_networks_is_refused_before_training():
    """Params: train.crop_size 16 (too small for CUT's discriminator) is refused, naming the minimum"""
    with pytest.raises(ParamsError, match=r"^train.crop_size: CUT trains on sides of at least 24 px that are "
                                          r"multiples of 4 \(ResnetGenerator >= 8, a multiple of 4; "
                                          r"PatchDiscriminator >= 24\), got 16 "):
        parse_params({"train": {"crop_size": 16}})
    assert not trains_on("cut", True, range(16, 17))[16] and trains_on("cut", True, range(24, 25))[24]


@pytest.mark.faults
@pytest.mark.parametrize("antialias", [True, False], ids=["antialias", "strided"])
@pytest.mark.parametrize("method", list(METHODS))
def test_a_crop_size_the_networks_cannot_train_on_is_refused_naming_the_minimum(method, antialias):
    """Params: every crop side from 8 to 33 for every method: refused exactly where a training step fails"""
    works = trains_on(method, antialias, SIZES)
    for size in SIZES:
        raw = {"preprocess": {"load_size": 64}, "train": {**TINY_NETS, "method": method, "antialias": antialias,
                                                          "crop_size": size}}
        try:
            parse_params(raw)
            valid, message = True, ""
        except ParamsError as exc:
            valid, message = False, str(exc)
        assert valid == works[size], (size, message)
        assert valid or message.startswith("train.crop_size: ") and f"got {size} " in message and "\n" not in message
    minimum = min(size for size, ok in works.items() if ok)
    if method != "dcgan":  # the message names the smallest side (DCGAN's: powers of two from 8)
        with pytest.raises(ParamsError, match=f"^train.crop_size: .* at least {minimum} px .*got {minimum - 1} "):
            parse_params({"train": {"method": method, "crop_size": minimum - 1}})
