import numpy as np
import pytest

from raycg.evaluate import EvalConfig, ModelSamples, prepare_reference, score
from raycg.evaluate.parts import lost_distance

from .evaluate_helpers import two_state_replicas


@pytest.fixture(scope="module")
def prepared(reference):
    ds, tica, _ = reference
    cfg = EvalConfig(bootstrap_resamples=0)
    return ds, tica, cfg, prepare_reference(ds, tica, cfg)


def test_a_model_that_blows_up_scores_worse_not_better(prepared):
    """Half of the replicas blow up half-way: the lost replica-time is reported and counted against the
    model (mass outside the reference grid), so KL/JS/W1 get worse than the healthy model's, and worse
    than scoring the survivors' frames alone (issue 12, defect 7)."""
    ds, tica, cfg, ref = prepared
    x, _ = two_state_replicas(8, 1000, 0.005, seed=21)
    healthy = ModelSamples.from_arrays(list(x), dt_frame_ps=1.0)
    broken = x.copy()
    broken[:4, 500:] = np.nan
    blown = ModelSamples.from_arrays(list(broken), dt_frame_ps=1.0)
    h = score(ds, tica, healthy, cfg, reference_summary=ref).metrics
    b = score(ds, tica, blown, cfg, reference_summary=ref).metrics
    off = score(ds, tica, blown, cfg.model_copy(update={"blowup_penalty": False}), reference_summary=ref).metrics
    assert b["replica_time_lost_fraction"] == pytest.approx(4 * 500 / 8000)
    assert b["n_blown_up"] == 4 and b["n_replicas_used"] == 8 and h["replica_time_lost_fraction"] == 0.0
    # planned frames after burn-in: 900 per replica; each blown-up replica lost 500 of them
    lost = 4 * 500 / (8 * 900)
    for k in ("kl_ref_model", "kl_model_ref", "js_divergence", "w1", "kl_ref_model_tic1"):
        assert b[k] > h[k] and b[k] > off[k], k
    # KL(ref‖model) grows by about -ln(1 - lost) (the model's grid mass shrinks by that factor)
    assert b["kl_ref_model"] - off["kl_ref_model"] == pytest.approx(-np.log(1 - lost), rel=0.1)
    # W1 moves the lost mass at most the grid diagonal
    assert 0 < b["w1"] - off["w1"] <= lost * lost_distance(ref) + 1e-9
    # descriptive metrics describe the frames that were sampled
    assert b["folded_fraction_model"] == off["folded_fraction_model"]


def test_a_replica_that_blew_up_before_its_first_frame_still_counts(prepared):
    ds, tica, cfg, ref = prepared
    x, _ = two_state_replicas(4, 400, 0.005, seed=22)
    reps = list(x) + [np.full((400, 10, 3), np.nan, np.float32)]
    s = ModelSamples.from_arrays(reps, dt_frame_ps=1.0)
    assert s.n_replicas == 4 and s.lost_planned_frames == [400]
    m = score(ds, tica, s, cfg, reference_summary=ref).metrics
    assert m["replica_time_lost_fraction"] == pytest.approx(0.2) and m["blown_up_fraction"] == pytest.approx(0.2)
    assert m["kl_ref_model"] > score(ds, tica, ModelSamples.from_arrays(list(x), dt_frame_ps=1.0), cfg,
                                     reference_summary=ref).metrics["kl_ref_model"]
