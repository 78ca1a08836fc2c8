"""The guarded YAML reader, strict numbers in configs, the trial limit and the light spec pre-check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pydantic import Field

from raycg.config import (
    MAX_YAML_ALIASES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    StrictModel,
    load_yaml_text,
    validate_config,
)
from raycg.errors import ConfigError, DatasetError
from raycg.study.spec.execution import MAX_TRIALS, GridSpec


def _write(tmp_path, text: str | bytes, name: str = "c.yaml"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def _nested(depth: int) -> str:
    """``depth`` levels of nodes: the top mapping, ``depth - 2`` lists, a scalar."""
    return "x: " + "[" * (depth - 2) + "1" + "]" * (depth - 2) + "\n"


def test_depth_limit_is_exact(tmp_path):
    data, _ = load_yaml_text(_write(tmp_path, _nested(MAX_YAML_DEPTH)))
    assert "x" in data
    with pytest.raises(ConfigError, match=f"nested deeper than {MAX_YAML_DEPTH}"):
        load_yaml_text(_write(tmp_path, _nested(MAX_YAML_DEPTH + 1)))


def test_alias_count_limit_is_exact(tmp_path):
    ok = "a: &v 1\nb: [" + ", ".join(["*v"] * MAX_YAML_ALIASES) + "]\n"
    assert load_yaml_text(_write(tmp_path, ok))[0]["b"] == [1] * MAX_YAML_ALIASES
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_ALIASES} YAML aliases"):
        load_yaml_text(_write(tmp_path, ok.replace("]", ", *v]")))


def test_alias_expansion_budget(tmp_path):
    lines = ["a0: &a0 [" + ", ".join(["0"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 7)]
    with pytest.raises(ConfigError, match=r"aliases expand to \d+ nodes \(limit 100000\)"):
        load_yaml_text(_write(tmp_path, "\n".join(lines) + "\n"))
    assert MAX_YAML_NODES == 100_000


def test_merge_keys_and_small_anchors_still_work(tmp_path):
    data, _ = load_yaml_text(_write(tmp_path, "base: &b {lr: 0.1, epochs: 2}\nrun:\n  <<: *b\n  epochs: 3\n"))
    assert data["run"] == {"lr": 0.1, "epochs": 3}


def test_duplicate_keys_name_both_lines(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml:4: duplicate key 'b' \(lines 2 and 4\)"):
        load_yaml_text(_write(tmp_path, "a:\n  b: 1\n  c: 2\n  b: 3\n"))
    data, _ = load_yaml_text(_write(tmp_path, "a: {b: 1}\nc: {b: 2}\n"))  # same key in two mappings is fine
    assert data == {"a": {"b": 1}, "c": {"b": 2}}


@pytest.mark.parametrize("raw, needle", [
    ("x: 1\n".encode("utf-16"), "byte 0: the file is UTF-16"),
    ("x: 1\n".encode("utf-16-be"), "byte 0: NUL byte"),
    (b"x: caf\xe9\n", "byte 6: 0xe9 is not UTF-8"),
])
def test_not_utf8_names_the_byte(tmp_path, raw, needle):
    with pytest.raises(ConfigError, match=needle) as exc:
        load_yaml_text(_write(tmp_path, raw))
    assert "save the file as UTF-8" in str(exc.value)


def test_utf8_bom_and_empty_file_are_fine(tmp_path):
    assert load_yaml_text(_write(tmp_path, b"\xef\xbb\xbfx: 1\n"))[0] == {"x": 1}
    assert load_yaml_text(_write(tmp_path, b""))[0] == {}


def test_directory_and_fifo_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, not a regular file"):
        load_yaml_text(tmp_path)
    fifo = tmp_path / "f.yaml"
    import os

    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="FIFO"):
        load_yaml_text(fifo)


class _Numbers(StrictModel):
    x: float = 1.0
    n: int = 1
    maybe: int | None = None
    weights: list[float] = Field(default_factory=list)
    flag: bool = False
    anything: list = Field(default_factory=list)


@pytest.mark.parametrize("data, field", [({"x": True}, "x"), ({"n": False}, "n"), ({"maybe": True}, "maybe"),
                                         ({"weights": [0.5, True]}, "weights")])
def test_bool_is_not_a_number(data, field):
    with pytest.raises(ConfigError, match=rf"^cfg: {field}: .*expected a number, got a boolean"):
        validate_config(_Numbers, data, source="cfg")


def test_yaml_ints_are_floats_and_bools_stay_bools(tmp_path):
    data, lines = load_yaml_text(_write(tmp_path, "x: 2\nweights: [0, 1]\nflag: true\nanything: [true, 1]\n"))
    cfg = validate_config(_Numbers, data, source="c.yaml", lines=lines)
    assert (cfg.x, cfg.weights, cfg.flag, cfg.anything) == (2.0, [0.0, 1.0], True, [True, 1])
    with pytest.raises(ValueError, match="boolean"):
        cfg.n = True


def test_trial_limit_is_exact_and_counts_without_listing_seeds():
    assert GridSpec(energy_weights=[0.0], seeds=MAX_TRIALS).n_trials() == MAX_TRIALS
    with pytest.raises(ConfigError, match=f"{MAX_TRIALS + 1} trials"):
        GridSpec(energy_weights=[0.0], seeds=MAX_TRIALS + 1)
    with pytest.raises(ConfigError, match="more than 100000"):
        GridSpec(energy_weights=[0.0, 1.0], seeds=10 ** 15)


def test_precheck_names_match_the_spec_fields():
    from raycg.study.spec import StudySpec
    from raycg.study.spec.precheck import TOP_LEVEL_FIELDS

    assert TOP_LEVEL_FIELDS == set(StudySpec.model_fields)


def test_precheck_imports_neither_torch_nor_ray(tmp_path):
    spec = _write(tmp_path, "name: s\ngrid: {energy_weights: [], seeds: 1}\n", "s.yaml")
    code = textwrap.dedent(f"""
        import sys
        from raycg.errors import ConfigError
        from raycg.study.spec.precheck import precheck_spec
        try:
            precheck_spec({str(spec)!r})
        except ConfigError as exc:
            print(exc)
        print(sorted(m for m in ("torch", "ray") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "s.yaml:2: grid.energy_weights" in out
    assert out.strip().splitlines()[-1] == "[]"


def test_precheck_refuses_unknown_section_with_its_line(tmp_path):
    from raycg.study.spec.precheck import precheck_spec

    with pytest.raises(ConfigError, match=r"s.yaml:2: gird: unknown field"):
        precheck_spec(_write(tmp_path, "name: s\ngird: {}\n", "s.yaml"))


def test_offsets_must_be_integers():
    from raycg.data.validate import check_offsets

    check_offsets(np.array([0, 5, 10]), 10, "o")
    for bad in (np.array([0.0, 5.0, 10.0]), np.array([0, 5.5, 10])):
        with pytest.raises(DatasetError, match="must be integers"):
            check_offsets(bad, 10, "o")


@pytest.mark.parametrize("version, needle", [(2, "newer than this raycg reads (1)"), (0, "format_version 0"),
                                             ("1", "valid integer"), (True, "valid integer")])
def test_meta_format_version(version, needle):
    from raycg.data.format import DatasetMeta

    good = {"n_frames": 1, "n_beads": 1, "n_trajectories": 1, "temperature_K": 300, "dt_frame_ps": 1,
            "beads": {"names": ["CA"], "types": [0], "masses": [1.0], "residue_names": ["ALA"],
                      "residue_ids": [1]}, "bonds": []}
    assert DatasetMeta.model_validate_json(json.dumps(good)).format_version == 1
    with pytest.raises(ValueError, match=re.escape(needle)):
        DatasetMeta.model_validate_json(json.dumps(dict(good, format_version=version)))
