"""Bad params, generated from the pydantic model in artshift.config (no hand-written list to fall
behind): every field with a wrong type and with a value out of its range, an unknown key in every
section, an empty file, YAML syntax errors. Each is one line that names the key or the line."""

from __future__ import annotations

import annotated_types as at
import pytest
import yaml

from artshift.config import Params, load_params, parse_params
from artshift.errors import ParamsError

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
