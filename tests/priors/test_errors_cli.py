"""Bad inputs give one clear InputError line (exit 2 from the CLI); the CLI fits, plots and shows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raycg.cli import main
from raycg.data.format import load, save
from raycg.errors import InputError
from raycg.priors import PriorConfig, PriorSet, fit_priors
from raycg.utils.io import sha256_file

from .helpers import make_dataset


def _chain(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(n, 4, 3))
    steps *= (3.8 + 0.1 * rng.normal(size=(n, 4, 1))) / np.linalg.norm(steps, axis=2, keepdims=True)
    return np.concatenate([np.zeros((n, 1, 3)), np.cumsum(steps, axis=1)], axis=1)


BONDS = [(0, 1), (1, 2), (2, 3), (3, 4)]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_dataset_without_bonds():
    with pytest.raises(InputError) as exc:
        fit_priors(make_dataset(_chain(500), []))
    assert "no CG bonds" in _one_line(exc) and "synthetic" in str(exc.value)


def test_too_few_frames():
    with pytest.raises(InputError) as exc:
        fit_priors(make_dataset(_chain(10), BONDS))
    assert "only 10 frame(s)" in _one_line(exc) and ">= 50" in str(exc.value)


def test_too_few_histogram_bins():
    """60 frames over 2000 bins cannot give the >= 5 populated bins a fit needs: an error when
    sparse_fallback is off, otherwise Gaussian moments of the corrected density (warned, recorded)."""
    ds = make_dataset(_chain(60), BONDS)
    with pytest.raises(InputError) as exc:
        fit_priors(ds, PriorConfig(bins=2000, sparse_fallback=False))
    msg = _one_line(exc)
    assert "histogram bin" in msg and "bond ALA1-ALA2" in msg and "priors.bins" in msg
    with pytest.warns(UserWarning, match="fallback"):
        ps = fit_priors(ds, PriorConfig(bins=2000))
    fit = ps.fits["bonds"][0]
    assert fit.method == "moments" and "bin" in fit.note
    r = np.linalg.norm(ds.coords[:, 1] - ds.coords[:, 0], axis=1)
    assert fit.params["x0"] == pytest.approx(r.mean(), abs=0.02)
    assert fit.params["k"] == pytest.approx(ps.kbt / r.var(), rel=0.35)   # 60 samples: ~20 % noise
    assert all(f.method == "not-fitted" for f in ps.fits["dihedrals"])
    assert np.all(ps.terms["dihedrals"].params["cos"] == 0)


def test_auto_bins():
    assert PriorConfig().resolved_bins(1_800_000) == 200
    assert PriorConfig().resolved_bins(160) == 24
    assert PriorConfig(bins=77).resolved_bins(160) == 77


def test_non_finite_coordinates_name_frame_and_bead():
    x = _chain(300)
    x[123, 2, 1] = np.nan
    with pytest.raises(InputError) as exc:
        fit_priors(make_dataset(x, BONDS), PriorConfig(range_sample_frames=10))
    assert "frame 123, bead 2" in _one_line(exc)


def test_constant_bond_and_bad_bond_index():
    x = _chain(300)
    x[:, 1] = x[:, 0] + np.array([3.8, 0.0, 0.0])      # bond 0-1 rigid
    with pytest.raises(InputError, match="constant"):
        fit_priors(make_dataset(x, BONDS))
    with pytest.raises(InputError, match="outside 0..4"):
        fit_priors(make_dataset(_chain(300), [(0, 1), (1, 7)]))


def test_bad_config_and_bad_priors_file(tmp_path):
    with pytest.raises(ValueError):
        PriorConfig(dihedral_order=0)
    with pytest.raises(ValueError):
        PriorConfig(typo_field=1)
    with pytest.raises(ValueError):
        PriorConfig(ranges={"bonds": (4.0, 3.0)})
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="not a raycg priors file"):
        PriorSet.load(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        PriorSet.load(bad)
    with pytest.raises(InputError, match="not found"):
        PriorSet.load(tmp_path / "missing.json")


def _files_hash(path):
    return {p.name: sha256_file(p) for p in sorted(path.iterdir())}


def test_cli_fit_plot_show_and_errors(tmp_path, capsys):
    ds_dir = save(make_dataset(_chain(3000), BONDS, 300.0), tmp_path / "ds")
    before = _files_hash(ds_dir)
    out = tmp_path / "priors.json"
    rc = main(["priors", "fit", str(ds_dir), "--out", str(out), "--plot", str(tmp_path / "plots"),
               "--bins", "50", "--quiet"])
    assert rc == 0
    assert _files_hash(ds_dir) == before            # input untouched
    ps = PriorSet.load(out)
    assert ps.dataset["content_hash"] == load(ds_dir).meta.content_hash
    assert ps.config.bins == 50 and ps.temperature_K == 300.0
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["angles.png", "bonds.png", "dihedrals.png", "repulsion.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    capsys.readouterr()
    assert main(["priors", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "bonds: 4 terms" in shown and "ALA1-ALA2" in shown and "sigma=" in shown

    # existing output without --overwrite, a dataset without bonds, a missing dataset: exit 2, one line
    assert main(["priors", "fit", str(ds_dir), "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    nob = save(make_dataset(_chain(300), []), tmp_path / "nobonds")
    nob_before = _files_hash(nob)
    assert main(["priors", "fit", str(nob), "--out", str(tmp_path / "x.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no CG bonds" in err and err.count("\n") == 1
    assert _files_hash(nob) == nob_before and not (tmp_path / "x.json").exists()
    assert main(["priors", "fit", str(tmp_path / "nope"), "--out", str(tmp_path / "y.json")]) == 2
    assert main(["priors", "fit", str(ds_dir), "--out", str(tmp_path / "z.json"), "--bins", "3"]) == 2
    assert "bins" in capsys.readouterr().err
