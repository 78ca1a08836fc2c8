"""The dataset gate (``require_valid``) every command uses, and the sparse row reads it relies on."""

from __future__ import annotations

import numpy as np
import pytest

from raycg.data import save
from raycg.data.npy_reader import NpyArray
from raycg.data.validate import require_valid
from raycg.errors import DatasetError

from .data_helpers import make_dataset, tree_digest


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return save(make_dataset(), tmp_path_factory.mktemp("gate") / "good")


def _bad(tmp_path, name, **changes):
    ds = make_dataset()
    for k, fn in changes.items():
        setattr(ds, k, fn(np.array(getattr(ds, k))))
    return save(ds, tmp_path / name)


def _nan_at(a, idx):
    a[idx] = np.nan
    return a


def test_good_dataset_passes_both_levels_and_comes_back_memory_mapped(good):
    before = tree_digest(good)
    for level in ("cheap", "full"):
        ds = require_valid(good, level, command="train")
        assert isinstance(ds.coords, np.memmap) and ds.n_frames == 4000
    assert tree_digest(good) == before
    mem = make_dataset(400)
    assert require_valid(mem) is mem


@pytest.mark.parametrize("name, changes, needles", [
    ("nm", {"coords": lambda c: c / 10}, ("coords.npy", "nm")),
    ("kj", {"forces": lambda f: f * 4.184}, ("forces.npy", "kJ/mol/Å")),
    ("nan", {"coords": lambda c: _nan_at(c, (321, 5, 2))}, ("frame 321", "bead 5")),
    ("empty", {"coords": lambda c: c[:0], "forces": lambda f: f[:0], "traj_offsets": lambda o: o[:1]},
     ("no frames",)),
])
def test_cheap_level_rejects_in_one_line_naming_command_file_and_fix(tmp_path, name, changes, needles):
    path = _bad(tmp_path, name, **changes)
    before = tree_digest(path)
    with pytest.raises(DatasetError) as err:
        require_valid(path, "cheap", command="priors fit")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"priors fit: dataset rejected: {path}"), msg
    assert all(n in msg for n in needles), msg
    assert tree_digest(path) == before


def test_full_level_adds_the_content_hash(tmp_path):
    path = save(make_dataset(), tmp_path / "edited")
    x = np.load(path / "coords.npy")
    x[10, 3, 0] += 0.01                       # still physical: only the hash can tell
    np.save(path / "coords.npy", x)
    require_valid(path, "cheap")
    with pytest.raises(DatasetError, match="content hash mismatch"):
        require_valid(path, "full", command="train")


def test_unknown_level():
    with pytest.raises(ValueError, match="level"):
        require_valid(make_dataset(100), "thorough")


def test_sparse_unsorted_row_reads_match_numpy(tmp_path, monkeypatch):
    a = np.arange(5000 * 6, dtype=np.float32).reshape(5000, 2, 3)
    np.save(tmp_path / "a.npy", a)
    monkeypatch.setattr(NpyArray, "_SPAN_BYTES", 24 * 100)   # windows of 100 rows: many reads
    idx = np.random.default_rng(0).integers(0, 5000, 700)
    idx[:3] = [4999, 0, 4999]
    with NpyArray(tmp_path / "a.npy") as r:
        assert np.array_equal(r[idx], a[idx])
        assert np.array_equal(r[np.arange(0, 5000, 37)], a[::37])
        assert r[np.zeros(0, np.int64)].shape == (0, 2, 3)
