import json

import numpy as np
import pytest

from raycg._testing.datasets import two_state_coords, two_state_states
from raycg.errors import ConfigError, DatasetError
from raycg.evaluate import EvalConfig, ModelSamples, prepare_reference, score

from .evaluate_helpers import replicas_of

FES_KEYS = ("edges_x", "edges_y", "fes_reference", "fes_model", "hist_reference", "hist_model",
            "transitions_per_replica", "deepest_well_population_model", "deepest_well_population_reference")


def _model(n_rep, length, p_switch, seed, start=None, mirror=False):
    rng = np.random.default_rng(seed)
    states = two_state_states(n_rep, length, p_switch, rng)
    if start is not None:
        states = (states + (states[:, :1] != start)) % 2  # flip whole rows so every replica starts in `start`
    x = two_state_coords(states, 0.4, rng).reshape(n_rep, length, 10, 3)
    if mirror:
        x = x * np.array([1, 1, -1], np.float32)
    return ModelSamples.from_arrays(list(x), dt_frame_ps=1.0), states


def test_identical_samples_score_zero(reference):
    ds, tica, _ = reference
    s = ModelSamples.from_arrays(replicas_of(ds), dt_frame_ps=ds.meta.dt_frame_ps)
    m = score(ds, tica, s, EvalConfig(burn_in_fraction=0.0)).metrics
    for k in ("kl_ref_model", "kl_model_ref", "js_divergence", "w1", "w1_tic1", "w1_tic2", "fes_mse",
              "folded_fraction_abs_error", "deepest_well_excess"):
        assert m[k] == 0.0, k
    assert m["coverage"] == 1.0 and m["transition_rate_ratio"] == 1.0
    assert m["missed_reference_mass"] == 0.0
    for k in ("kl_ref_model_eps8", "kl_ref_model_eps4", "kl_ref_model_eps3"):
        assert m[k] == 0.0, k
    assert m["n_frames_model"] == ds.n_frames


def test_two_state_reference_metrics_are_physical(reference):
    ds, tica, states = reference
    m = score(ds, tica, ModelSamples.from_arrays(replicas_of(ds), dt_frame_ps=1.0)).metrics
    # folded = native Cα trace + 0.4 Å noise -> RMSD ~0.6 Å < 1.5 Å; extended chain is far from native
    assert m["folded_fraction_reference"] == pytest.approx(np.mean(states == 0), abs=0.01)
    assert m["mirror_folded_fraction_reference"] == 0.0
    assert m["n_basins"] == 2
    truth = 0.005 * 1500  # expected switches per trajectory
    assert 0.5 * truth < m["transitions_per_trajectory_mean_reference"] < 1.5 * truth


def test_missing_state_direction_and_folded_population(reference):
    """A model stuck in the folded state: KL(ref‖model) > KL(model‖ref); folded fraction ~1."""
    ds, tica, states = reference
    s, _ = _model(6, 1000, 0.0, seed=3, start=0)
    m = score(ds, tica, s).metrics
    assert m["kl_ref_model"] > 2 * m["kl_model_ref"]
    assert m["folded_fraction_model"] > 0.99
    assert m["folded_fraction_diff"] == pytest.approx(1 - m["folded_fraction_reference"], abs=0.01)
    assert m["coverage"] < 0.7
    assert m["transitions_per_replica_mean"] == 0.0 and m["trapped_fraction_mean"] > 0.99


def test_missed_reference_mass_and_the_kl_epsilon_sensitivity(reference):
    """A model that misses the unfolded basin: missed_reference_mass = 1 − coverage_weighted exactly (and
    about the unfolded population); KL(ref‖model) grows as ε shrinks, JS stays below ln 2."""
    ds, tica, states = reference
    s, _ = _model(6, 1000, 0.0, seed=3, start=0)
    m = score(ds, tica, s).metrics
    assert m["missed_reference_mass"] == 1.0 - m["coverage_weighted"]
    assert m["missed_reference_mass"] == pytest.approx(np.mean(states == 1), abs=0.1)
    assert m["kl_ref_model_eps8"] > m["kl_ref_model"] > m["kl_ref_model_eps4"] > m["kl_ref_model_eps3"] > 0
    # an unvisited reference mass m adds ≈ m ln(10) per decade of ε
    assert m["kl_ref_model_eps8"] - m["kl_ref_model"] == pytest.approx(
        2 * np.log(10) * m["missed_reference_mass"], rel=0.1)
    assert 0 < m["js_divergence"] < np.log(2)
    assert m["missed_reference_mass_ci_low"] <= m["missed_reference_mass"] <= m["missed_reference_mass_ci_high"]
    assert np.isfinite(m["js_divergence_ci_low"]) and "kl_ref_model_eps8_ci_low" not in m


def test_trapping_signal_fewer_transitions_and_overpopulated_well(reference):
    ds, tica, _ = reference
    trapped, _ = _model(8, 1500, 0.0005, seed=4, start=0)
    normal, _ = _model(8, 1500, 0.005, seed=5)
    mt, mn = score(ds, tica, trapped).metrics, score(ds, tica, normal).metrics
    assert mt["transitions_per_replica_mean"] < 0.3 * mn["transitions_per_replica_mean"]
    assert mt["transition_rate_ratio"] < 0.3
    folded_basin_model = max(mt["deepest_well_population_model"], mt["max_basin_population_model"])
    assert folded_basin_model > 0.8 > mn["max_basin_population_model"]
    assert abs(mn["deepest_well_excess"]) < abs(mt["deepest_well_excess"])


def test_mirror_images_fool_distances_but_not_rmsd(reference):
    ds, tica, _ = reference
    mir, _ = _model(8, 1500, 0.005, seed=6, mirror=True)
    m = score(ds, tica, mir).metrics
    assert m["js_divergence"] < 0.05  # pair distances cannot tell chirality
    assert m["folded_fraction_model"] == 0.0
    assert m["mirror_folded_fraction_model"] > 0.3
    assert m["mirror_fraction_model"] > m["mirror_fraction_reference"] + 0.2


def test_burn_in_drops_the_start_of_every_replica(reference):
    ds, tica, _ = reference
    reps = [r[:n] for r, n in zip(replicas_of(ds), (1000, 999, 10))]
    m = score(ds, tica, ModelSamples.from_arrays(reps), EvalConfig(burn_in_fraction=0.25)).metrics
    assert m["n_frames_model"] == (1000 - 250) + (999 - 249) + (10 - 2)
    assert np.isnan(m["transition_rate_per_ns_model"])  # dt unknown for bare arrays


def test_save_writes_scores_and_fes(reference, tmp_path):
    ds, tica, _ = reference
    s, _ = _model(4, 800, 0.005, seed=7)
    res = score(ds, tica, s)
    res.save(tmp_path / "trial")
    doc = json.loads((tmp_path / "trial" / "scores.json").read_text())
    assert doc["metrics"]["kl_ref_model"] == pytest.approx(res.metrics["kl_ref_model"])
    assert doc["info"]["n_replicas_total"] == 4 and "provenance" in doc
    with np.load(tmp_path / "trial" / "fes.npz", allow_pickle=False) as z:
        for k in FES_KEYS:
            assert k in z.files, k
        assert z["fes_model"].shape == (60, 60) and z["edges_x"].shape == (61,)
        assert np.nanmin(z["fes_reference"]) == 0.0 and np.isnan(z["fes_model"]).any()
        assert z["hist_model"].sum() == res.metrics["n_frames_model"]
        assert z["transitions_per_replica"].shape == (4,)
        # F = -kT ln p on the populated bins
        h = z["hist_reference"]
        pos = h > 0
        f = -float(z["kT"]) * np.log(h[pos] / h.sum())
        np.testing.assert_allclose(z["fes_reference"][pos], f - f.min(), atol=1e-9)


def test_prepared_reference_is_reused_saved_and_checked(reference, tmp_path):
    from raycg.cv import fit_reference_tica
    from raycg.errors import InputError
    from raycg.evaluate import ReferenceSummary

    ds, tica, _ = reference
    cfg = EvalConfig()
    ref = prepare_reference(ds, tica, cfg)
    s, _ = _model(3, 600, 0.005, seed=8)
    a = score(ds, tica, s, cfg, reference_summary=ref).metrics
    b = score(ds, tica, s, cfg).metrics
    assert a == pytest.approx(b, nan_ok=True)
    back = ReferenceSummary.load(ref.save(tmp_path / "reference_summary.npz"))
    assert score(ds, tica, s, cfg, reference_summary=back).metrics == pytest.approx(b, nan_ok=True)
    with pytest.raises(InputError, match="other evaluation settings .*bins"):
        score(ds, tica, s, EvalConfig(bins=40), reference_summary=back)
    with pytest.raises(InputError, match="another TICA"):
        score(ds, fit_reference_tica(ds, lag=5), s, cfg, reference_summary=back)
    with pytest.raises(ConfigError, match="n_components"):
        prepare_reference(ds, tica.__class__(**{**tica.__dict__, "coefficients": tica.coefficients[:, :1],
                                                 "_model": None, "_torch_cache": {}}), cfg)


def test_bad_inputs_are_one_line_errors(reference):
    ds, tica, _ = reference
    with pytest.raises(DatasetError, match="12 beads"):
        score(ds, tica, ModelSamples.from_arrays([np.zeros((20, 12, 3), np.float32)]))
    with pytest.raises(DatasetError, match="all empty"):
        ModelSamples.from_arrays([np.zeros((0, 10, 3), np.float32)])
    nan = np.full((5, 10, 3), np.nan, np.float32)
    with pytest.raises(DatasetError, match="all 2 replicas blew up"):
        ModelSamples.from_arrays([nan, nan])
    # a single frame survives any burn-in fraction < 1 (floor)
    one = score(ds, tica, ModelSamples.from_arrays([np.asarray(ds.coords[:1])]), EvalConfig(burn_in_fraction=0.9))
    assert one.metrics["n_frames_model"] == 1
    from raycg.config import validate_config

    with pytest.raises(ConfigError, match="basin_core_kT"):
        validate_config(EvalConfig, {"basin_core_kT": 3.0, "basin_merge_kT": 1.0}, source="spec.yaml")


def test_every_metric_has_a_direction_and_a_row_in_metrics_md(reference):
    from pathlib import Path

    import raycg.evaluate as ev

    ds, tica, _ = reference
    s, _ = _model(2, 300, 0.005, seed=9)
    res = score(ds, tica, s)
    doc = (Path(ev.__file__).parent / "METRICS.md").read_text()
    assert not hasattr(ev, "METRIC_DIRECTIONS")  # one table: raycg.evaluate.metric_table
    for name in res.metrics:
        spec = ev.find_metric(name)
        assert spec is not None, name
        stem = spec.name.removesuffix("_model").removesuffix("_reference").removesuffix("_mean")
        stem = stem.removesuffix("_median")
        assert f"`{stem}" in doc, name
    for name in ev.METRICS:
        assert name in res.metrics, f"{name} is in the table but score does not report it"
    for key in FES_KEYS:
        assert f"`{key}`" in doc, key
    assert ev.metric_direction("kl_ref_model_tic2") == "lower" and ev.metric_direction("coverage") == "higher"
    assert ev.metric_direction("w1_ci_high") == "lower"
    for k, eps in (("kl_ref_model_eps8", "1e-8"), ("kl_ref_model_eps4", "1e-4"), ("kl_ref_model_eps3", "1e-3")):
        spec = ev.metric_spec(k)
        assert (spec.label, spec.unit, spec.direction) == (f"KL(ref‖model), ε = {eps}", "nats", "lower"), spec
        assert not (spec.headline or spec.can_be_primary or spec.has_floor)
    spec = ev.metric_spec("missed_reference_mass")
    assert (spec.unit, spec.direction, spec.has_floor, spec.headline) == ("fraction", "lower", True, False)
    from raycg.evaluate.metric_table import floor_metrics, interval_metrics

    assert "missed_reference_mass" in interval_metrics() and "missed_reference_mass" in floor_metrics()
    assert "js_divergence" in ev.primary_candidates() and "js_divergence" in interval_metrics()
    assert ev.metric_spec("js_divergence").has_floor


def test_rmsd_is_rotation_invariant_not_mirror_invariant_and_strided(reference):
    from scipy.spatial.transform import Rotation

    from raycg._testing.datasets import native_ca
    from raycg.evaluate.score import mirror, rmsd_to

    nat = native_ca()
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).apply(nat) + [5.0, -3.0, 1.0]
    both = np.stack([rot, mirror(nat)]).astype(np.float32)
    r = rmsd_to(both, nat)
    assert r[0] < 1e-3 and r[1] > 1.0
    assert rmsd_to(np.repeat(both, 5, axis=0), nat, stride=5).tolist() == pytest.approx(r.tolist(), abs=1e-6)
    ds, tica, _ = reference
    s, _ = _model(3, 500, 0.005, seed=10)
    full = score(ds, tica, s).metrics
    strided = score(ds, tica, s, EvalConfig(rmsd_max_frames=1000)).metrics
    assert strided["folded_fraction_reference"] == pytest.approx(full["folded_fraction_reference"], abs=0.05)
    assert strided["folded_fraction_model"] == pytest.approx(full["folded_fraction_model"], abs=0.05)
