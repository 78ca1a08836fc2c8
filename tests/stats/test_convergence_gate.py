"""The study's convergence gate: permutation-test checks Holm-adjusted over the trials (raycg.stats)."""

from __future__ import annotations

import math

import pytest

from raycg.evaluate import Convergence
from raycg.evaluate.convergence import PermutationCheck
from raycg.stats import perfect_study_pass_probability, study_convergence_gate


def _conv(p_start: float, p_drift: float = 0.5, failed: tuple[str, ...] = ()) -> Convergence:
    tests = {"drift": PermutationCheck(p_drift, 0.01, "halves differ", "JS 0.1 vs 0.05", "the runs still drift"),
             "start_basins": PermutationCheck(p_start, 0.01, "started folded stay folded", "0.7 vs 0.6",
                                              "memory of the starts")}
    return Convergence(list(failed), {"run_longer_factor": 1.0}, [], tests)


def test_a_trial_failing_alone_passes_when_its_test_is_held_to_the_studys_alpha():
    trials = [_conv(0.005)] + [_conv(0.5) for _ in range(9)]
    assert not trials[0].converged and trials[0].run_longer_factor == 2.0        # alone: p 0.005 < 0.01
    gated = study_convergence_gate(trials)
    t = gated[0].tests["start_basins"]
    assert t.p_adjusted == pytest.approx(0.05) and t.family_size == 10
    assert all(g.converged for g in gated) and gated[0].run_longer_factor == 1.0
    assert not trials[0].converged                                               # the inputs are not modified


def test_a_strong_failure_still_fails_and_says_how_it_was_adjusted():
    trials = [_conv(1e-4), _conv(0.3, p_drift=0.002)] + [_conv(0.5) for _ in range(8)]
    gated = study_convergence_gate(trials)
    assert not gated[0].converged and gated[1].converged
    (reason,) = gated[0].reasons
    assert "p = 0.0001, Holm-adjusted over 10 trials 0.001 < 0.01): memory of the starts" in reason, reason
    assert gated[0].run_longer_factor == 2.0


def test_fixed_checks_are_not_tests_and_missing_verdicts_stay_missing():
    trials = [_conv(0.5, failed=("replicas ran 20 ps (run 6× longer)",)), None, _conv(0.5)]
    gated = study_convergence_gate(trials)
    assert gated[1] is None and gated[2].converged
    assert gated[0].reasons == ["replicas ran 20 ps (run 6× longer)"]


def test_one_trial_is_judged_alone_and_a_record_round_trips():
    (g,) = study_convergence_gate([_conv(0.005)])
    assert g.tests["start_basins"].p_adjusted is None and not g.converged
    back = Convergence.from_dict(g.to_dict())
    assert back.reasons == g.reasons and back.run_longer_factor == 2.0
    assert back.diagnostics["run_longer_factor"] == 1.0                          # the fixed checks' own factor


def test_a_record_written_before_tests_were_kept_apart_keeps_its_reasons():
    old = {"converged": False, "reasons": ["memory of the starts"], "diagnostics": {"run_longer_factor": 2.0}}
    g, _ = study_convergence_gate([Convergence.from_dict(old), Convergence.from_dict(old)])
    assert g.reasons == ["memory of the starts"] and g.run_longer_factor == 2.0


def test_perfect_study_pass_probability_uses_the_strictest_holm_threshold():
    repeats = [_conv(0.5), _conv(0.005), _conv(0.0005), _conv(0.9), _conv(0.5, failed=("too short",))]
    # alpha/n = 0.001 for 10 trials: 0.5, 0.005 and 0.9 pass; 0.0005 and the fixed failure do not
    g = perfect_study_pass_probability(repeats, 10)
    assert (g.passing, g.repeats) == (3, 5) and g.probability == pytest.approx(0.6**10)
    assert perfect_study_pass_probability(repeats, 1).probability == pytest.approx(0.4)   # 0.005 < 0.01 alone
    assert math.isnan(perfect_study_pass_probability([], 10).probability)


def test_the_lower_bound_is_clopper_pearson_and_admits_what_30_clean_repeats_cannot_rule_out():
    g = perfect_study_pass_probability([_conv(0.5)] * 30, 10)
    assert g.probability == 1.0
    assert g.lower == pytest.approx((0.05 ** (1 / 30)) ** 10)        # CP bound with no failure: 0.05^(1/n)
    assert 0.35 < g.lower < 0.45       # 0 failures in 30 repeats still allow ~10% per trial
