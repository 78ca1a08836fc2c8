import numpy as np
import pytest

from raycg.evaluate import EvalConfig, prepare_reference, score
from raycg.evaluate.metric_table import interval_metrics

from .evaluate_helpers import two_state_model


@pytest.fixture(scope="module")
def prepared(reference):
    ds, tica, _ = reference
    cfg = EvalConfig(bootstrap_resamples=100, bootstrap_resamples_w1=20)
    return ds, tica, cfg, prepare_reference(ds, tica, cfg)


def _width(m, k):
    return m[f"{k}_ci_high"] - m[f"{k}_ci_low"]


def test_intervals_bracket_the_value_shrink_with_replicas_and_are_seeded(prepared):
    ds, tica, cfg, ref = prepared
    few = score(ds, tica, two_state_model(8, 400, 0.005, seed=41), cfg, reference_summary=ref)
    many = score(ds, tica, two_state_model(32, 400, 0.005, seed=41), cfg, reference_summary=ref).metrics
    m = few.metrics
    for k in interval_metrics():
        assert m[f"{k}_ci_low"] <= m[k] <= m[f"{k}_ci_high"], k
    for k in ("kl_ref_model", "js_divergence", "fes_mse_aligned", "folded_fraction_abs_error"):
        assert _width(many, k) < 0.8 * _width(m, k), k
    assert few.info["bootstrap"]["resamples"] == 100 and few.info["bootstrap"]["resamples_w1"] == 20
    again = score(ds, tica, two_state_model(8, 400, 0.005, seed=41), cfg, reference_summary=ref).metrics
    assert again["w1_ci_low"] == m["w1_ci_low"]
    other = score(ds, tica, two_state_model(8, 400, 0.005, seed=41), cfg.model_copy(update={"bootstrap_seed": 1}),
                  reference_summary=ref).metrics
    assert other["kl_ref_model_ci_low"] != m["kl_ref_model_ci_low"]


def test_one_replica_or_no_resamples_give_no_interval(prepared):
    ds, tica, cfg, ref = prepared
    one = score(ds, tica, two_state_model(1, 400, 0.005, seed=42), cfg, reference_summary=ref).metrics
    off = score(ds, tica, two_state_model(4, 400, 0.005, seed=42), cfg.model_copy(update={"bootstrap_resamples": 0}),
                reference_summary=ref).metrics
    assert np.isnan(one["kl_ref_model_ci_low"]) and np.isnan(off["w1_ci_high"])


def test_replica_bootstrap_spread_matches_the_spread_between_repeated_trials(prepared):
    """Frames within a replica are correlated (switching every ~100 frames): resampling replicas gives
    the trial-to-trial spread; resampling frames would give a spread several times too small."""
    ds, tica, cfg, ref = prepared
    cfg = cfg.model_copy(update={"bootstrap_resamples_w1": 0})
    z = 1.959964
    values, sds = {"kl_ref_model": [], "js_divergence": []}, {"kl_ref_model": [], "js_divergence": []}
    for seed in range(12):
        m = score(ds, tica, two_state_model(12, 400, 0.005, seed=100 + seed), cfg, reference_summary=ref).metrics
        for k in values:
            values[k].append(m[k])
            sds[k].append(_width(m, k) / (2 * z))
    for k in values:
        ratio = np.median(sds[k]) / np.std(values[k], ddof=1)
        assert 0.6 < ratio < 1.7, (k, ratio)
