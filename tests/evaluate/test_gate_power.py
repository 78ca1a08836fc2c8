import json
import math

import numpy as np
import pytest

from raycg.errors import InputError
from raycg.evaluate import EvalConfig, SamplingProtocol, draw_reference_samples, prepare_reference, score
from raycg.evaluate.floor import segment_source, split_reference
from raycg.evaluate.gate_power import CHECKS, GatePower, gate_power

PROTOCOL = SamplingProtocol(8, 400, 1.0, "equilibrium")


@pytest.fixture(scope="module")
def power(reference):
    ds, tica, _ = reference
    split = split_reference(ds, 1 / 3, seed=1)
    cfg = EvalConfig(convergence_permutations=999)
    return ds, tica, cfg, split, gate_power(ds, tica, cfg, PROTOCOL, (0.2, 1.0, 3.0), n_repeats=4, seed=3,
                                            split=split)


def test_runs_of_a_fifth_of_tau_are_caught_by_the_time_check_every_time(power):
    ds, tica, cfg, split, gp = power
    tau = float(tica.timescales_ps[0])
    assert gp.slowest_timescale_ps == pytest.approx(tau) and gp.method == "held-out"
    row = gp.row(0.2)
    assert row.frames_per_replica == max(2, round(0.2 * tau / PROTOCOL.frame_interval_ps))
    assert row.caught_by["time"] == 1.0 and row.caught_fraction == 1.0
    assert all(r < cfg.min_time_over_timescale for r in row.time_over_timescale)
    for r in gp.rows:
        assert 0.0 <= r.caught_by_data_fraction <= r.caught_fraction <= 1.0
        assert r.caught_by_data_fraction >= max(r.caught_by[c] for c in CHECKS if c != "time")
        assert len(r.drift_p) == r.n_repeats == 4


def test_the_overall_verdict_is_the_trial_gate(power):
    """A repeat counted caught is one the trial's own scoring marks unconverged (full config)."""
    ds, tica, cfg, split, gp = power
    scoring = split.scoring_reference(ds)
    stica = split.scoring_tica(tica, scoring)
    ref = prepare_reference(scoring, stica, cfg)
    source = split.floor_reference(ds)
    src = segment_source(source, tica, cfg)
    row = gp.row(3.0)
    prot = SamplingProtocol(PROTOCOL.n_replicas, row.frames_per_replica, PROTOCOL.frame_interval_ps,
                            PROTOCOL.start_method)
    cfg_loose = cfg.model_copy(update={"min_time_over_timescale": 0.5, "bootstrap_resamples": 0})
    unconverged, data = [], []
    for i in range(gp.n_repeats):
        s, _ = draw_reference_samples(source, src, prot, gp.seed + i, disjoint=True)
        conv = score(scoring, stica, s, cfg.model_copy(update={"bootstrap_resamples": 0}),
                     reference_summary=ref).convergence
        unconverged.append(not conv.converged)
        data.append(not score(scoring, stica, s, cfg_loose, reference_summary=ref).convergence.converged)
    assert row.caught_fraction == pytest.approx(np.mean(unconverged))
    assert row.caught_by_data_fraction == pytest.approx(np.mean(data))   # 3τ passes a 0.5τ time check


def test_gate_power_round_trips_and_is_deterministic(power, tmp_path):
    ds, tica, cfg, split, gp = power
    back = GatePower.load(gp.save(tmp_path / "gate_power.json"))
    assert back.to_dict() == json.loads((tmp_path / "gate_power.json").read_text())
    assert back.rows[1].caught_by == gp.rows[1].caught_by and back.protocol == gp.protocol
    doc = json.loads((tmp_path / "gate_power.json").read_text())
    assert doc["format"] == "raycg-gate-power" and [r["multiple"] for r in doc["rows"]] == [0.2, 1.0, 3.0]
    assert doc["split"]["holdout_trajectories"] == split.holdout
    again = gate_power(ds, tica, cfg, PROTOCOL, (1.0,), n_repeats=4, seed=3, split=split)
    a, b = again.rows[0].to_dict(), gp.row(1.0).to_dict()
    assert a == b
    other = gate_power(ds, tica, cfg, PROTOCOL, (1.0,), n_repeats=4, seed=40, split=split)
    assert other.rows[0].crossings_per_replica != gp.row(1.0).crossings_per_replica
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not a raycg gate power"):
        GatePower.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="multiples"):
        gate_power(ds, tica, cfg, PROTOCOL, (0.0,), n_repeats=1, split=split)
    assert math.isfinite(gp.wall_s)
