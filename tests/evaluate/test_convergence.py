import json

import numpy as np
import pytest

from raycg._testing.datasets import two_state_coords
from raycg.evaluate import Convergence, EvalConfig, ModelSamples, prepare_reference, score

from .evaluate_helpers import two_state_model

# the two-state reference switches with p = 0.005 per 1-ps frame: slowest implied timescale ~130 ps


@pytest.fixture(scope="module")
def prepared(reference):
    ds, tica, _ = reference
    cfg = EvalConfig(bootstrap_resamples=0)
    return ds, tica, cfg, prepare_reference(ds, tica, cfg)


def _conv(prepared, samples, **cfg_kw) -> Convergence:
    ds, tica, cfg, ref = prepared
    res = score(ds, tica, samples, cfg.model_copy(update=cfg_kw), reference_summary=ref)
    assert res.metrics["converged"] == float(res.convergence.converged)
    return res.convergence


def test_a_long_sample_of_the_reference_process_converges(prepared):
    c = _conv(prepared, two_state_model(16, 1000, 0.005, seed=31))
    assert c.converged and c.reasons == []
    d = c.diagnostics
    assert d["time_over_timescale"] > 5 and d["crossings_per_replica"] >= 1 and d["halves_p"] > 0.01
    assert d["run_longer_factor"] == 1.0


def test_short_replicas_fail_on_time_and_crossings(prepared):
    c = _conv(prepared, two_state_model(32, 200, 0.005, seed=32))
    assert not c.converged
    assert any("slowest implied timescale" in r and "run 3.6× longer" in r for r in c.reasons), c.reasons
    assert any("transitions per replica" in r for r in c.reasons), c.reasons
    assert c.diagnostics["run_longer_factor"] == pytest.approx(5 / c.diagnostics["time_over_timescale"])


def test_stuck_replicas_fail_on_crossings_and_remember_their_starts(prepared):
    c = _conv(prepared, two_state_model(16, 1000, 0.0, seed=33))
    assert not c.converged
    # replicas that never leave their state are, on the reference TICs, a process far slower than the runs
    assert any("the model's own slowest implied timescale" in r for r in c.reasons), c.reasons
    assert c.diagnostics["model_slowest_timescale_ps"] > 10 * c.diagnostics["reference_slowest_timescale_ps"]
    assert any("0 folding/unfolding transitions" in r for r in c.reasons), c.reasons
    assert any("memory of the starts" in r for r in c.reasons), c.reasons


def test_drifting_replicas_fail_the_half_agreement(prepared):
    """Every replica starts unfolded and folds once half-way: long enough, one crossing each, but the
    first and second halves disagree."""
    rng = np.random.default_rng(34)
    st = np.zeros((16, 1000), np.int8)
    for i, w in enumerate(rng.integers(450, 650, size=16)):
        st[i, :w] = 1
    x = two_state_coords(st, 0.4, rng).reshape(16, 1000, 10, 3)
    c = _conv(prepared, ModelSamples.from_arrays(list(x), dt_frame_ps=1.0))
    assert not c.converged and any("still drift" in r for r in c.reasons), c.reasons
    # one switch per run is also a relaxation as slow as the runs: the model's own τ limits the time check
    assert all("still drift" in r or "model's own slowest implied timescale" in r for r in c.reasons), c.reasons
    assert any("start-basin agreement not assessable" in n for n in c.notes)
    # the same replicas with their halves in random order are stationary by construction
    c2 = _conv(prepared, ModelSamples.from_arrays([r if i % 2 else r[::-1] for i, r in enumerate(x)],
                                                  dt_frame_ps=1.0))
    assert not any("drift" in r for r in c2.reasons)


def test_unknown_frame_spacing_and_thresholds_are_config(prepared, tmp_path):
    s = ModelSamples.from_arrays(two_state_model(16, 1000, 0.005, seed=31).replicas)  # no dt
    c = _conv(prepared, s)
    assert not c.converged and "frame spacing unknown" in c.reasons[0]
    # 1.5 τ runs still remember their starts a little (start gap p ≈ 0.01): every threshold is config
    loose = _conv(prepared, two_state_model(32, 200, 0.005, seed=32), min_time_over_timescale=1.0,
                  min_crossings_per_replica=0.5, start_basin_alpha=0.001)
    assert loose.converged, loose.reasons
    ds, tica, cfg, ref = prepared
    res = score(ds, tica, two_state_model(4, 300, 0.005, seed=35), cfg, reference_summary=ref)
    doc = json.loads((res.save(tmp_path / "t") / "scores.json").read_text())
    assert doc["convergence"]["converged"] is False and doc["convergence"]["reasons"]
    assert Convergence.from_dict(doc["convergence"]).reasons == res.convergence.reasons
    assert doc["metrics"]["converged"] == 0.0


def _one_state_series(n_folded_starts: int, stay_folded: int = 0, n: int = 32, returns: int = 0):
    """``returns`` replicas fold once after burn-in (a committed folding event, 5 folded frames) and unfold
    again."""
    from raycg.evaluate.convergence import ReplicaSeries

    start = np.where(np.arange(n) < n_folded_starts, 0.5, 4.0)
    folded = np.zeros(n)
    folded[:stay_folded] = 225.0                   # folded starts that never left
    fold_in = np.zeros(n)
    fold_in[n - returns:] = 1.0
    folded[n - returns:] = 5.0
    rng = np.random.default_rng(0)
    cells = [rng.integers(0, 4, 225) for _ in range(n)]
    return ReplicaSeries(basin_cells=cells, n_cells=5, folded_fraction=folded / 225.0, start_rmsd=start,
                         events=2 * fold_in, frames=np.full(n, 225.0), dt_frame_ps=1.0, slowest_timescale_ps=25.0,
                         folding_entries=fold_in, unfolding_entries=fold_in, folded_frames=folded,
                         rmsd_frames=np.full(n, 225.0))


def test_a_one_state_model_whose_other_state_emptied_is_settled_without_crossings():
    """A model that never folds: every replica started folded unfolded during burn-in and none came back
    in 7.2 ns of aggregate sampling. Its folded population is settled near 0; the crossing rule alone would
    call it unconverged. With too few departures, or one folded start that never left, it stays unconverged."""
    from raycg.evaluate import EvalConfig
    from raycg.evaluate.convergence import assess_convergence

    cfg = EvalConfig()
    ok = assess_convergence(_one_state_series(20), cfg)
    assert not any("transitions per replica" in r for r in ok.reasons), ok.reasons
    assert any("one-state model" in n and "all 20 replicas started folded" in n for n in ok.notes), ok.notes
    few = assess_convergence(_one_state_series(cfg.min_one_state_departures - 1), cfg)
    assert any("transitions per replica" in r for r in few.reasons)
    stuck = assess_convergence(_one_state_series(20, stay_folded=1), cfg)
    assert any("transitions per replica" in r for r in stuck.reasons)


def test_the_one_state_note_states_the_returns_it_observed():
    """0 returns: the note says none returned (and counts 0); with returns it gives their number and the
    depleted-state frames and does not claim "none returned". Returns never turn a pass into a fail
    (monotone in sampling): the model still passes the crossing check."""
    from raycg.evaluate.convergence import assess_convergence

    cfg = EvalConfig()
    none = assess_convergence(_one_state_series(20), cfg)
    note = next(n for n in none.notes if "one-state model" in n)
    assert "none returned" in note and "0 committed returns" in note and "0 of 7200 frames" in note, note
    assert none.diagnostics["one_state_returns"] == 0.0
    back = assess_convergence(_one_state_series(20, returns=2), cfg)
    note = next(n for n in back.notes if "one-state model" in n)
    assert "none returned" not in note, note
    assert "2 committed returns into the folded state" in note and "10 of 7200 frames" in note, note
    assert back.diagnostics["one_state_returns"] == 2.0 and back.diagnostics["one_state_depleted_frames"] == 10.0
    assert not any("transitions per replica" in r for r in back.reasons), back.reasons
    assert "stays within 0.02 of 0" in note, note


def _ar1(n_rep: int, length: int, taus_frames, seed: int) -> list[np.ndarray]:
    """Replicas of independent stationary AR(1) coordinates with autocorrelation exp(-1/τ) per frame."""
    rng = np.random.default_rng(seed)
    phi = np.exp(-1.0 / np.asarray(taus_frames, np.float64))
    out = []
    for _ in range(n_rep):
        e = rng.normal(size=(length, len(phi))) * np.sqrt(1 - phi**2)
        x = np.empty_like(e)
        x[0] = rng.normal(size=len(phi))
        for t in range(1, length):
            x[t] = phi * x[t - 1] + e[t]
        out.append(x)
    return out


def test_the_model_timescale_recovers_an_ar1_process():
    """Slowest τ = 40 frames × 2 ps = 80 ps (the other coordinate 4 frames): recovered within 15% at a lag of
    10 frames; a sample whose replicas never move (λ = 1) has τ = ∞; too few lagged pairs give NaN."""
    from raycg.evaluate.convergence import model_slowest_timescale

    for seed in (1, 2):
        tau = model_slowest_timescale(_ar1(16, 1500, [40.0, 4.0], seed), lag_frames=10, dt_frame_ps=2.0)
        assert tau == pytest.approx(80.0, rel=0.15), (seed, tau)
    rng = np.random.default_rng(3)
    frozen = [np.tile(rng.normal(size=2), (50, 1)) for _ in range(8)]
    assert model_slowest_timescale(frozen, 5, 1.0) == np.inf
    assert np.isnan(model_slowest_timescale([np.zeros((20, 2))], 5, 1.0))
    assert np.isnan(model_slowest_timescale(_ar1(4, 200, [40.0, 4.0], 4), 10, None))


def test_a_model_slower_than_the_reference_fails_on_its_own_timescale():
    """Replicas switching 5× less often than the reference (τ ≈ 500 ps vs ≈ 130 ps) run 900 ps: enough for
    the reference's τ, not for their own; the reason names the model's τ."""
    from raycg.evaluate.convergence import ReplicaSeries, assess_convergence

    tics = _ar1(16, 1000, [500.0, 5.0], 5)
    s = ReplicaSeries(basin_cells=[np.zeros(1000, np.int64)] * 16, n_cells=2, folded_fraction=np.full(16, 0.5),
                      start_rmsd=np.full(16, 4.0), events=np.full(16, 4.0), frames=np.full(16, 1000.0),
                      dt_frame_ps=1.0, slowest_timescale_ps=130.0, tics=tics, reference_lag_ps=20.0)
    c = assess_convergence(s, EvalConfig())
    d = c.diagnostics
    assert d["reference_slowest_timescale_ps"] == d["slowest_timescale_ps"] == 130.0
    assert d["model_timescale_lag_frames"] == 20.0
    assert 300 < d["model_slowest_timescale_ps"] < 800, d
    assert d["time_over_timescale"] == pytest.approx(1000.0 / d["model_slowest_timescale_ps"])
    assert any("the model's own slowest implied timescale" in r for r in c.reasons), c.reasons
    # the same replicas judged by a slower reference: the reference's τ limits and is named
    slow_ref = assess_convergence(ReplicaSeries(**{**s.__dict__, "slowest_timescale_ps": 5000.0}), EvalConfig())
    assert any("the reference's slowest implied timescale (5000 ps" in r for r in slow_ref.reasons), slow_ref.reasons


def test_the_model_timescale_through_score(prepared):
    """Through ``score``: a sample of the reference process has its own τ near the reference's (and passes);
    one switching 5× less often fails the time check on its own τ."""
    same = _conv(prepared, two_state_model(16, 1000, 0.005, seed=31))
    d = same.diagnostics
    assert 0.6 < d["model_slowest_timescale_ps"] / d["reference_slowest_timescale_ps"] < 1.3, d
    slow = _conv(prepared, two_state_model(16, 1000, 0.001, seed=36))
    d = slow.diagnostics
    assert d["model_slowest_timescale_ps"] > 2 * d["reference_slowest_timescale_ps"], d
    assert any("the model's own slowest implied timescale" in r for r in slow.reasons), slow.reasons


def test_sequential_permutation_p_is_besag_clifford_and_valid():
    """p = h/L when the h-th draw reaching the statistic is the L-th, else (g+1)/(n_max+1); under the null,
    P(p ≤ α) ≤ α (checked at α = 0.05 and 0.2 over 2,000 null statistics)."""
    from raycg.evaluate.convergence import sequential_permutation_p

    seq = np.tile([0.0, 1.0], 5000)                       # every 2nd draw reaches 0.5
    pos = [0]

    def fixed(m):
        out = seq[pos[0]:pos[0] + m]
        pos[0] += m
        return out

    r = sequential_permutation_p(fixed, 0.5, 9999, h=50)
    assert r.p == 50 / 100 and len(r.null) == 100         # the 50th hit is draw 100
    rng = np.random.default_rng(7)
    never = sequential_permutation_p(lambda m: rng.normal(size=m), 10.0, 2999)
    assert never.p == 1 / 3000 and len(never.null) == 2999
    ps = np.array([sequential_permutation_p(lambda m: rng.normal(size=m), float(rng.normal()), 999).p
                   for _ in range(2000)])
    for a in (0.05, 0.2):
        assert np.mean(ps <= a) <= a + 3 * np.sqrt(a * (1 - a) / len(ps)), (a, np.mean(ps <= a))
    assert np.mean(ps <= 0.2) > 0.2 - 3 * np.sqrt(0.16 / len(ps))   # not conservative to uselessness
