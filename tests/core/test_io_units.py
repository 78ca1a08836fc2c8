"""Atomic output, hashing, units and provenance."""

import json
import os

import numpy as np
import pytest

from raycg import units as U
from raycg.errors import InputError
from raycg.utils.io import atomic_directory, atomic_path, atomic_write_json, sha256_file
from raycg.utils.provenance import provenance


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not dest.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_whole_file(tmp_path):
    dest = tmp_path / "r.json"
    atomic_write_json(dest, {"a": np.float32(1.5), "b": np.arange(3)})
    assert json.loads(dest.read_text()) == {"a": 1.5, "b": [0, 1, 2]}


def test_atomic_directory_is_all_or_nothing(tmp_path):
    dest = tmp_path / "d"
    with pytest.raises(ValueError), atomic_directory(dest) as tmp:
        (tmp / "x").write_text("1")
        raise ValueError
    assert not dest.exists()
    with atomic_directory(dest) as tmp:
        (tmp / "x").write_text("1")
    assert (dest / "x").read_text() == "1"
    with pytest.raises(FileExistsError):
        with atomic_directory(dest):
            pass
    with atomic_directory(dest, overwrite=True) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(os.listdir(dest)) == ["y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_sha256_changes_with_one_byte(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 1000)
    h1 = sha256_file(p)
    p.write_bytes(b"abc" * 999 + b"abd")
    assert sha256_file(p) != h1


def test_units_constants():
    assert U.kbt(300) == pytest.approx(0.596, abs=1e-3)
    assert U.kbt(350) == pytest.approx(0.696, abs=1e-3)
    # 1 kJ/mol/nm = 0.0239006 kcal/mol/Å
    assert U.force_factor("kJ/mol/nm") == pytest.approx(0.0239006, rel=1e-5)
    assert U.length_factor("nm") == 10.0
    # 1 kcal/mol/(Å amu) = 418.4 Å/ps^2: 4184 J/mol / (1e-10 m * 1e-3 kg/mol) = 4.184e16 m/s^2 = 418.4 Å/ps^2
    assert U.ACCEL_FACTOR_A_PER_PS2 == pytest.approx(4184.0 / (1e-10 * 1e-3) * 1e10 / 1e24)
    with pytest.raises(InputError, match="unknown force unit"):
        U.force_factor("eV/A")


def test_provenance_record_has_versions_and_hash():
    rec = provenance({"a": 1}, data_hash="sha256:x", stage="test")
    assert rec["config"] == {"a": 1} and rec["data_hash"] == "sha256:x" and rec["stage"] == "test"
    assert rec["packages"]["numpy"] == np.__version__
    json.dumps(rec)


def test_atomic_outputs_get_normal_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        f = atomic_write_json(tmp_path / "a.json", {})
        with atomic_directory(tmp_path / "d") as tmp:
            (tmp / "x").write_text("1")
    finally:
        os.umask(mask)
    assert f.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
