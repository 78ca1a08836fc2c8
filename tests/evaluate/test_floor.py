import json

import numpy as np
import pytest

from raycg.errors import InputError
from raycg.evaluate import (
    EvalConfig,
    NoiseFloor,
    SamplingProtocol,
    draw_reference_samples,
    noise_floor,
    prepare_reference,
    score,
)
from raycg.evaluate.floor import split_reference

from .evaluate_helpers import two_state_model

HEADLINE = ("kl_ref_model", "js_divergence", "w1", "fes_mse_aligned")


@pytest.fixture(scope="module")
def prepared(reference):
    ds, tica, _ = reference
    cfg = EvalConfig(bootstrap_resamples=0)
    return ds, tica, cfg, prepare_reference(ds, tica, cfg)


@pytest.fixture(scope="module")
def floor(prepared):
    ds, tica, cfg, ref = prepared
    return noise_floor(ds, tica, cfg, SamplingProtocol(16, 300, 1.0, "equilibrium"), n_repeats=16, seed=0,
                       reference_summary=ref)


def test_a_perfect_model_has_no_excess_and_a_shifted_one_has(prepared, floor):
    """Perfect models (more draws of the reference under the same protocol) score the floor on average;
    a model stuck in the folded state is far above it."""
    ds, tica, cfg, ref = prepared
    n = 8
    excess = {m: [] for m in HEADLINE}
    for seed in range(1000, 1000 + n):
        perfect, _ = draw_reference_samples(ds, ref, floor.protocol, seed=seed)
        ex = floor.excess(score(ds, tica, perfect, cfg, reference_summary=ref).metrics)
        for m in HEADLINE:
            excess[m].append(ex[m])
    stuck = floor.excess(score(ds, tica, two_state_model(16, 300, 0.0, seed=5, start=0), cfg,
                               reference_summary=ref).metrics)
    for m in HEADLINE:
        st = floor.metrics[m]
        se = st.sd * np.sqrt(1 / n + 1 / st.n)
        assert st.mean > 0 and st.q025 <= st.mean <= st.q975, m
        assert abs(np.mean(excess[m])) < 3 * se, (m, np.mean(excess[m]), se)
    for m in ("kl_ref_model", "js_divergence", "w1"):
        assert stuck[m] > floor.metrics[m].q975 - floor.metrics[m].mean + 3 * floor.metrics[m].sd, m
    assert floor.excess({"kl_ref_model": 1.0, "n_frames_model": 5.0}) == {
        "kl_ref_model": pytest.approx(1.0 - floor.metrics["kl_ref_model"].mean)}


def test_segments_are_the_reference_continuation_at_the_protocol_spacing(prepared):
    ds, tica, cfg, ref = prepared
    s, rec = draw_reference_samples(ds, ref, SamplingProtocol(6, 50, 2.0, "kcenters"), seed=3)
    assert rec["stride"] == 2 and s.dt_frame_ps == 2.0 and s.n_replicas == 6
    coords = np.asarray(ds.coords)
    for r in s.replicas:
        assert len(r) == 50
        i = int(np.flatnonzero((coords == r[0]).all(axis=(1, 2)))[0])
        step = 2 if i + 98 < len(coords) and np.array_equal(coords[i + 2], r[1]) else -2
        np.testing.assert_array_equal(r, coords[i : i + step * 50 : step])   # forward or time-reversed


def test_replicas_longer_than_the_reference_use_whole_trajectories_and_say_so(prepared, tmp_path):
    ds, tica, cfg, ref = prepared
    f = noise_floor(ds, tica, cfg, SamplingProtocol(4, 2000, 1.0), n_repeats=3, reference_summary=ref)
    assert f.realized["whole_trajectories"] and "whole reference trajectories" in f.notes[0]
    assert f.metrics["kl_ref_model"].n == 3 and f.metrics["kl_ref_model"].sd > 0
    back = NoiseFloor.load(f.save(tmp_path / "noise_floor.json"))
    assert back.protocol == f.protocol and back.notes == f.notes and back.values == f.values
    assert back.metrics["w1"] == f.metrics["w1"]
    doc = json.loads((tmp_path / "noise_floor.json").read_text())
    assert doc["format"] == "raycg-noise-floor" and set(doc["metrics"]) == set(f.metrics)
    with pytest.raises(InputError, match="start method"):
        SamplingProtocol(4, 10, 1.0, "farthest")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not a raycg noise floor"):
        NoiseFloor.load(tmp_path / "bad.json")


# ----------------------------------------------------------------------------------------------
# held-out floor


def _trajectory_of_frames(ds, replica) -> set[int]:
    """Trajectories of ``ds`` holding the replica's frames (exact coordinate matches)."""
    coords = np.asarray(ds.coords).reshape(ds.n_frames, -1)
    lookup = {row.tobytes(): i for i, row in enumerate(coords)}
    frames = [lookup[np.asarray(x, np.float32).reshape(-1).tobytes()] for x in replica]
    return set(np.searchsorted(ds.traj_offsets, frames, side="right") - 1)


def test_the_split_is_by_trajectory_and_deterministic(reference):
    ds, _, _ = reference
    a, b = split_reference(ds, 1 / 3, seed=4), split_reference(ds, 1 / 3, seed=4)
    assert a.to_dict() == b.to_dict() and a.method == "held-out"
    assert len(a.holdout) == 3 and sorted(a.holdout + a.scoring) == list(range(ds.n_trajectories))
    assert not set(a.holdout) & set(a.scoring)
    assert any(split_reference(ds, 1 / 3, seed=s).holdout != a.holdout for s in range(5, 12))
    sub = a.scoring_reference(ds)
    assert sub.n_trajectories == 5 and sub.n_frames == len(ds.frames_of(a.scoring))
    np.testing.assert_array_equal(np.asarray(sub.coords), np.asarray(ds.coords)[ds.frames_of(a.scoring)])
    assert split_reference(ds, 0.0).method == "in-sample" and split_reference(ds, 0.0).holdout == []
    assert split_reference(ds, 0.99).scoring and split_reference(ds, 0.01).holdout   # at least one each side
    one = split_reference(1, 0.5)
    assert one.method == "in-sample" and "nothing can be held out" in one.notes[0]
    with pytest.raises(InputError, match="holdout fraction"):
        split_reference(ds, 1.0)


def test_held_out_segments_never_come_from_scoring_trajectories(prepared, tmp_path):
    ds, tica, cfg, _ = prepared
    split = split_reference(ds, 1 / 3, seed=2)
    protocol = SamplingProtocol(8, 200, 1.0, "equilibrium")
    f = noise_floor(ds, tica, cfg, protocol, n_repeats=3, seed=0, split=split, in_sample_repeats=2)
    assert f.method == "held-out" and set(f.realized["trajectories"]) <= set(split.holdout)
    assert f.split["holdout_trajectories"] == split.holdout and f.split["scoring_trajectories"] == split.scoring
    assert f.in_sample["n_repeats"] == 2 and f.in_sample["metrics"]["kl_ref_model"]["mean"] > 0
    # the floor is scored against the scoring trajectories only
    assert f.dataset_hash == split.scoring_reference(ds).content_hash != ds.content_hash
    # every frame of every segment lies in a held-out trajectory (coordinates matched, not bookkeeping)
    source = split.floor_reference(ds)
    from raycg.evaluate.floor import segment_source

    for seed in range(3):
        s, rec = draw_reference_samples(source, segment_source(source, tica, cfg), protocol, seed, disjoint=True)
        for r in s.replicas:
            hit = _trajectory_of_frames(ds, r)
            assert hit <= set(split.holdout) and not hit & set(split.scoring)
    back = NoiseFloor.load(f.save(tmp_path / "noise_floor.json"))
    assert back.method == "held-out" and back.split == f.split and back.in_sample == f.in_sample


def test_holdout_zero_reproduces_the_in_sample_floor_bit_for_bit(prepared):
    """Nothing held out: the floor is today's, segments of the reference scored against it."""
    ds, tica, cfg, ref = prepared
    protocol = SamplingProtocol(8, 150, 1.0, "equilibrium")
    f = noise_floor(ds, tica, cfg, protocol, n_repeats=3, seed=5, split=split_reference(ds, 0.0, seed=5))
    assert f.method == "in-sample" and f.in_sample is None
    manual = [score(ds, tica, draw_reference_samples(ds, ref, protocol, 5 + i)[0], cfg, reference_summary=ref)
              for i in range(3)]
    for m, vals in f.values.items():
        want = [float(s.metrics.get(m, np.nan)) for s in manual]
        np.testing.assert_array_equal(np.asarray(vals), np.asarray(want), err_msg=m)
    plain = noise_floor(ds, tica, cfg, protocol, n_repeats=3, seed=5)
    assert plain.values == f.values and plain.method == "in-sample"
