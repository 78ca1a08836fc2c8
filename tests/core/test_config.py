"""Typed config: errors name the file, the line and the field."""

import pytest
from pydantic import Field

from raycg.config import StrictModel, dump_config, load_config, validate_config
from raycg.errors import ConfigError


class Inner(StrictModel):
    lr: float = Field(1e-3, gt=0)


class Outer(StrictModel):
    name: str
    training: Inner = Inner()


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_field_names_field_and_line(tmp_path):
    p = _write(tmp_path, "name: x\ntraining:\n  lr: 0.1\n  lrr: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(Outer, p)
    msg = str(err.value)
    assert f"{p}:4: training.lrr: unknown field" in msg
    assert "\n" not in msg


def test_out_of_range_value_names_line(tmp_path):
    p = _write(tmp_path, "name: x\ntraining:\n  lr: -1\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: training.lr: Input should be greater than 0"):
        load_config(Outer, p)


def test_missing_required_field(tmp_path):
    p = _write(tmp_path, "training:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="name: required field is missing"):
        load_config(Outer, p)


def test_invalid_yaml_reports_line(tmp_path):
    p = _write(tmp_path, "name: x\ntraining: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_round_trip(tmp_path):
    cfg = validate_config(Outer, {"name": "a", "training": {"lr": 0.5}})
    p = _write(tmp_path, dump_config(cfg))
    assert load_config(Outer, p) == cfg


def test_direct_construction_gives_one_line_config_error():
    with pytest.raises(ConfigError, match=r"^Inner: lr: Input should be greater than 0$"):
        Inner(lr=-1)
    with pytest.raises(ConfigError, match=r"^Outer: training.lr: Input should be greater than 0$"):
        Outer(name="x", training={"lr": -1})


def test_nested_error_keeps_field_path_and_line(tmp_path):
    p = _write(tmp_path, "name: x\ntraining:\n  lr: 0\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: training.lr: Input should be greater than 0$"):
        load_config(Outer, p)
