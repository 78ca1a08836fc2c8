"""The driver's ETA: phases timed as measured, the rest scheduled on the study's slots."""

import math

import pytest

from raycg.study.results.eta import PhaseTimer

ENDS = {"train": 0.6, "simulate": 0.9, "score": 1.0}
TRAIN, SIM, SCORE = 10.0, 30.0, 2.0  # seconds per phase of every trial below


def run_phases(timer, trial, t0, chunks=3, epochs=4):
    """Reports of one trial started at t0 (train epochs, simulation chunks, phase ends, done); returns its end."""
    timer.start(trial, t0)
    t = t0
    for e in range(epochs):
        t += TRAIN / epochs
        timer.report(trial, "train", 0.6 * (e + 1) / epochs, e == epochs - 1, t)
    for c in range(chunks):
        t += SIM / chunks
        timer.report(trial, "simulate", 0.6 + 0.3 * (c + 1) / chunks, c == chunks - 1, t)
    t += SCORE
    timer.report(trial, "done", 1.0, False, t)
    return t


def test_nothing_measured_yet_is_unknown_not_a_guess():
    timer = PhaseTimer(dict(ENDS))
    timer.start("a", 0.0)
    assert math.isnan(timer.eta(pending=9, slots=2, now=5.0))


def test_after_one_whole_trial_the_eta_is_exact_list_scheduling():
    timer = PhaseTimer(dict(ENDS))
    end_a = run_phases(timer, "a", 0.0)          # 42 s
    assert end_a == pytest.approx(TRAIN + SIM + SCORE)
    timer.start("b", 0.0)                          # b started with a, now 12 s into its simulation
    timer.report("b", "train", 0.6, True, TRAIN)
    timer.report("b", "simulate", 0.7, False, TRAIN + 10.0)
    now = end_a
    # b: 30 - 32 < 0 s left of simulate -> 0, + score 2; 8 pending trials of 42 s on 2 slots: slot 1 starts at
    # now, slot 2 when b ends (2 s): 4 + 4 trials -> the last ends at 2 + 4 * 42
    assert timer.eta(pending=8, slots=2, now=now) == pytest.approx(2.0 + 4 * 42.0)
    assert timer.eta(pending=0, slots=2, now=now) == pytest.approx(2.0)


def test_phases_in_progress_extrapolate_and_untimed_ones_leave_the_eta_unknown():
    timer = PhaseTimer(dict(ENDS))
    timer.start("a", 0.0)
    timer.report("a", "train", 0.15, False, 2.5)    # a quarter of training in 2.5 s
    assert timer.duration("train") == pytest.approx(10.0)        # from the last report, not from now
    assert timer.duration("simulate") is None and math.isnan(timer.eta(pending=4, slots=1, now=4.0))
    timer.report("a", "train", 0.6, True, 10.0)
    timer.report("a", "simulate", 0.7, False, 20.0)  # a third of simulate in 10 s: 30 s
    assert timer.duration("simulate") == pytest.approx(30.0)
    assert math.isnan(timer.eta(pending=4, slots=1, now=20.0))   # score reports only its end: not timed yet
    timer.add_finished("score", 2.0)                               # (another trial's)
    # 20 s left of a's simulation, then its score, then 4 trials of 42 s on one slot
    assert timer.eta(pending=4, slots=1, now=20.0) == pytest.approx(20.0 + 2.0 + 4 * 42.0)


def test_the_eta_follows_the_latest_wave_not_the_first_one():
    timer = PhaseTimer(dict(ENDS))
    for end, train, sim in ((80.0, 10.0, 70.0), (82.0, 10.0, 70.0), (122.0, 10.0, 30.0), (124.0, 10.0, 30.0)):
        timer.add_finished("train", train, end - sim)
        timer.add_finished("simulate", sim, end)
        timer.add_finished("score", 2.0, end + 2.0)
    assert timer.duration("simulate") == pytest.approx(50.0)
    assert timer.duration("simulate", recent=2) == pytest.approx(30.0)
    assert timer.eta(pending=4, slots=2, now=130.0) == pytest.approx(2 * 42.0)


def test_a_running_wave_replaces_the_compiling_first_one_before_it_finishes():
    timer = PhaseTimer(dict(ENDS))
    for end in (80.0, 82.0):                      # first wave: 70 s simulations (they compiled)
        timer.add_finished("train", 10.0, 10.0)
        timer.add_finished("simulate", 70.0, end)
        timer.add_finished("score", 2.0, end + 2.0)
    for trial, t0 in (("c", 84.0), ("d", 86.0)):  # second wave: a third of each simulation in 10 s
        timer.start(trial, t0)
        timer.report(trial, "train", 0.6, True, t0 + 10.0)
        timer.report(trial, "simulate", 0.7, False, t0 + 20.0)
    assert timer.duration("simulate", recent=2) == pytest.approx(30.0)
    assert timer.duration("simulate") == pytest.approx(50.0)
    # c and d have 18 and 20 s of simulation left, then 2 s of score; one pending trial of 42 s after each
    assert timer.eta(pending=2, slots=2, now=106.0) == pytest.approx(20.0 + 2.0 + 42.0)


def test_a_restored_trial_is_placed_by_its_next_report_and_done_trials_leave():
    timer = PhaseTimer(dict(ENDS))
    run_phases(timer, "a", 0.0)
    timer.report("b", "simulate", 0.8, False, 100.0)   # restored mid-simulation: no start seen
    assert timer.running["b"].phase == "simulate" and timer.running["b"].since == 100.0
    timer.forget("b")
    assert timer.eta(pending=0, slots=2, now=101.0) == 0.0
