"""`raycg data report`: is a reference usable? Converged vs non-converged synthetic references."""

import json

import numpy as np
import pytest

import raycg.data as D
from raycg._testing.datasets import make_dataset, two_state_coords, two_state_states
from raycg.cli import main
from raycg.report.dataset_report import dataset_report


def _save(tmp_path, states, name, noise=0.35):
    rng = np.random.default_rng(1)
    n_traj, length = states.shape
    coords = two_state_coords(states.reshape(-1), noise, rng)
    ds = make_dataset(coords, [length] * n_traj, dt_frame_ps=10.0, temperature_K=350.0, name=name)
    return D.save(ds, tmp_path / name)


@pytest.fixture(scope="module")
def converged(tmp_path_factory):
    rng = np.random.default_rng(0)
    return _save(tmp_path_factory.mktemp("conv"), two_state_states(8, 1500, 0.02, rng), "converged")


def test_converged_reference_is_usable(converged, tmp_path):
    rep = dataset_report(converged, out=tmp_path, lag=5)
    assert rep.n_folding >= 10 and rep.n_unfolding >= 10
    assert 0.35 < rep.folded_fraction < 0.65
    assert rep.fes_half_difference_kcal < 0.5
    assert not any("not converged" in w for w in rep.warnings), rep.warnings
    assert rep.usable
    assert rep.total_time_ns == pytest.approx(8 * 1500 * 10.0 * 1e-3)
    assert rep.implied_timescales_ns[0] > 0
    # two well-separated states: two TIC basins (no sampled frames between them: no saddle to measure)
    assert rep.n_basins == 2 and (rep.lowest_barrier_kT is None or rep.lowest_barrier_kT > 2.0)
    assert sum(rep.basin_populations) == pytest.approx(1.0, abs=0.02)
    text = rep.text()
    assert ("basins         2 in the TIC 1-2 FES" in text and "per trajectory" in text
            and "lowest escape barrier" in text)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["n_folding"] == rep.n_folding and saved["n_basins"] == 2
    import matplotlib.image as mpimg

    img = mpimg.imread(tmp_path / "report.png")
    assert img.shape[0] > 300 and img[..., :3].std() > 0.05


def test_halves_that_disagree_are_flagged(tmp_path):
    # even trajectories stay folded, odd ones unfolded: each half sees a different landscape
    states = np.zeros((8, 1000), np.int8)
    states[1::2] = 1
    path = _save(tmp_path, states, "split")
    rep = dataset_report(path, out=tmp_path / "r", lag=5)
    assert any("not converged" in w for w in rep.warnings)
    assert any("folded fraction differs" in w for w in rep.warnings)
    assert rep.n_folding == 0 and not rep.usable


def test_one_basin_is_flagged(tmp_path):
    states = np.zeros((8, 600), np.int8)                      # folded throughout: a single basin
    path = _save(tmp_path, states, "one")
    rep = dataset_report(path, out=tmp_path / "r", lag=5)
    assert rep.n_basins == 1 and rep.lowest_barrier_kT is None
    assert any("one basin" in w for w in rep.warnings)


def test_cli_prints_report_and_bad_path_exits_2(converged, tmp_path, capsys):
    assert main(["data", "report", str(converged), "--out", str(tmp_path), "--lag", "5"]) == 0
    out = capsys.readouterr().out
    assert "folded" in out and "convergence" in out and "verdict" in out
    assert main(["data", "report", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
