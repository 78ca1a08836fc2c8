"""Folding transitions (Cα-RMSD hysteresis) in the scoring: counts, rates and the trapping signal."""

import numpy as np
import pytest

from raycg._testing.datasets import two_state_coords
from raycg.config import validate_config
from raycg.errors import ConfigError, InputError
from raycg.evaluate import EvalConfig, ModelSamples, metric_direction, prepare_reference, score

from .evaluate_helpers import replicas_of
from .test_score import _model


def _switching(switch_frames, length=1000, seed=0):
    """One replica per entry: starts folded (state 0) and switches state at the given frames."""
    rng = np.random.default_rng(seed)
    reps = []
    for frames in switch_frames:
        flips = np.zeros(length, np.int64)
        flips[list(frames)] = 1
        states = np.cumsum(flips) % 2
        reps.append(two_state_coords(states, 0.4, rng))
    return ModelSamples.from_arrays(reps, dt_frame_ps=1.0)


def test_a_model_switching_k_times_has_k_transitions(reference):
    ds, tica, _ = reference
    # burn-in drops frames 0-99; replica 0 switches 3 times after it, replica 1 five times (one switch
    # inside the burn-in does not count)
    s = _switching([(200, 450, 700), (50, 150, 300, 500, 650, 800)])
    res = score(ds, tica, s)
    m = res.metrics
    assert res.arrays["folding_transitions_per_replica"].tolist() == [3, 5]
    assert m["folding_transitions_per_replica_mean"] == 4.0
    assert m["folding_transition_rate_per_ns_model"] == pytest.approx(8 / (2 * 900 * 1e-3))


def test_reference_transitions_are_counted_on_the_two_state_dataset(reference):
    ds, tica, states = reference
    ref = prepare_reference(ds, tica, EvalConfig())
    per_traj = states.reshape(ds.n_trajectories, -1)
    truth = (np.diff(per_traj, axis=1) != 0).sum(axis=1)  # every state change is one event
    assert truth.sum() > 0
    assert ref.folding_transitions_per_trajectory.tolist() == truth.tolist()
    s = ModelSamples.from_arrays(replicas_of(ds), dt_frame_ps=ds.meta.dt_frame_ps)
    m = score(ds, tica, s, EvalConfig(burn_in_fraction=0.0), reference_summary=ref).metrics
    assert m["folding_transitions_per_trajectory_mean_reference"] == pytest.approx(truth.mean())
    assert m["folding_transition_rate_per_ns_reference"] == pytest.approx(
        truth.sum() / (ds.n_frames * ds.meta.dt_frame_ps * 1e-3))
    # the reference scored against itself has the reference kinetics
    assert m["folding_transition_rate_ratio"] == pytest.approx(1.0)
    assert m["folding_transition_rate_log_ratio_abs"] == pytest.approx(0.0, abs=1e-12)


def test_trapped_model_has_no_transitions_and_a_worse_log_ratio(reference):
    ds, tica, _ = reference
    trapped, _ = _model(6, 1000, 0.0, seed=3, start=0)
    normal, _ = _model(8, 1500, 0.005, seed=5)
    mt, mn = score(ds, tica, trapped).metrics, score(ds, tica, normal).metrics
    assert mt["folding_transitions_per_replica_mean"] == 0.0
    assert mt["folding_transition_rate_ratio"] == 0.0 < 1.0
    assert np.isfinite(mt["folding_transition_rate_log_ratio_abs"])
    assert mn["folding_transitions_per_replica_mean"] > 3
    assert 0.5 < mn["folding_transition_rate_ratio"] < 2.0
    assert mt["folding_transition_rate_log_ratio_abs"] > 2.0 > 5 * mn["folding_transition_rate_log_ratio_abs"]


def test_unknown_model_frame_spacing_gives_nan_rates(reference):
    ds, tica, _ = reference
    m = score(ds, tica, ModelSamples.from_arrays(replicas_of(ds)[:2])).metrics
    assert m["folding_transitions_per_replica_mean"] > 0
    for k in ("folding_transition_rate_per_ns_model", "folding_transition_rate_ratio",
              "folding_transition_rate_log_ratio_abs"):
        assert np.isnan(m[k]), k


def test_directions_and_config_checks(reference, tmp_path):
    from raycg.evaluate import ReferenceSummary

    assert metric_direction("folding_transition_rate_log_ratio_abs") == "lower"
    # a count is compared with the reference's through the rate ratio, not ranked on its own
    assert metric_direction("folding_transitions_per_replica_mean") is None
    with pytest.raises(ConfigError, match="folding_core_A"):
        validate_config(EvalConfig, {"folding_core_A": 3.0, "unfolded_core_A": 1.0})
    with pytest.raises(ConfigError, match="folded_rmsd_A"):
        validate_config(EvalConfig, {"folded_rmsd_A": 3.5})
    # the prepared reference keeps its transition counts and refuses other cores
    ds, tica, _ = reference
    ref = prepare_reference(ds, tica, EvalConfig())
    back = ReferenceSummary.load(ref.save(tmp_path / "ref.npz"))
    assert back.folding_transitions_per_trajectory.tolist() == ref.folding_transitions_per_trajectory.tolist()
    assert back.folding_time_ns == ref.folding_time_ns
    with pytest.raises(InputError, match="unfolded_core_A"):
        score(ds, tica, _model(2, 300, 0.005, seed=1)[0], EvalConfig(unfolded_core_A=4.0), reference_summary=back)
