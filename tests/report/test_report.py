"""raycg.report and ``raycg analyze`` on a synthetic study directory (see conftest.make_study)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raycg.cli import main
from raycg.errors import InputError
from raycg.report import run_analysis, trial_table
from raycg.report.figures import free_energy, infer_kt
from raycg.units import kbt

from .conftest import FLOOR, ONE_STATE_NOTE

KT = kbt(300.0)
FIGURES = ("paired_differences.png", "metrics_vs_weight.png", "fes_pooled.png", "fes_difference.png", "trapping.png",
           "training_curves.png", "support.png")
ANALYSED = ["kl_ref_model", "js_divergence", "w1", "fes_mse_aligned"]


@pytest.fixture(scope="module")
def analysed(study):
    """Run the CLI once for the module: (study dir, stdout, exit code)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["analyze", str(study)])
    return study, out.getvalue(), rc


def _quiet(root: Path, **kw):
    return run_analysis(root, figures=False, **kw)


def test_trial_table_keeps_every_trial(study):
    t = trial_table(study)
    assert len(t) == 25 and t["status"].value_counts().to_dict() == {"ok": 23, "failed": 1, "running": 1}
    failed = t.set_index("trial_id").loc["w1_s3"]
    assert failed["status"] == "failed" and "blew up" in failed["error"]
    assert np.isnan(failed["kl_ref_model"]) and failed["energy_weight"] == 1.0
    running = t.set_index("trial_id").loc["w10_s8"]
    assert running["status"] == "running" and running["phase"] == "train" and running["seed"] == 8


def test_unreadable_result_is_a_row(tmp_path, study_factory):
    root = study_factory(tmp_path / "s", failed=False, running=False)
    bad = root / "trials" / "broken"
    bad.mkdir()
    (bad / "result.json").write_text("{not json")
    t = trial_table(root).set_index("trial_id")
    assert t.loc["broken", "status"] == "unreadable" and "result.json" in t.loc["broken", "error"]


def test_analyze_writes_every_file(analysed):
    study, _, rc = analysed
    assert rc == 0
    res = study / "results"
    for rel in ("trials.parquet", "summary.csv", "convergence.csv", "report.md", *(f"figures/{f}" for f in FIGURES)):
        assert (res / rel).is_file() and (res / rel).stat().st_size > 0, rel
    assert not [p for p in res.rglob("*") if ".tmp" in p.name]  # atomic writes left nothing behind
    summary = pd.read_csv(res / "summary.csv")
    assert summary["metric"].unique().tolist() == ANALYSED  # primary first, then the spec's secondary metrics
    assert summary.groupby("metric")["role"].first().to_dict() == {
        "kl_ref_model": "primary", "js_divergence": "secondary", "w1": "secondary", "fes_mse_aligned": "secondary"}
    row = summary[(summary.metric == "kl_ref_model") & (summary.group == 1.0)].iloc[0]
    assert row["n"] == 7 and row["n_missing"] == 1 and row["n_pairs"] == 7 and row["n_dropped"] == 1
    assert row["floor_mean"] == FLOOR["kl_ref_model"][0]
    assert row["excess_over_floor"] == pytest.approx(row["mean"] - FLOOR["kl_ref_model"][0])
    sec = summary[summary.role == "secondary"].dropna(subset=["t_p"])
    from raycg.stats import holm

    assert sec["t_p_holm"].to_numpy() == pytest.approx(holm(sec["t_p"].to_numpy()))  # metrics × weights


def test_report_states_design_methods_floor_convergence_and_verdict(analysed):
    study, _, _ = analysed
    md = (study / "results" / "report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (study / "results" / link).is_file(), link
    assert {Path(x).name for x in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)} == set(FIGURES)
    a = _quiet(study)
    verdict = md.split("## Verdict", 1)[1].split("```")[1].strip().splitlines()
    assert verdict == a.verdict_lines and len(verdict) == 2
    for phrase in (
            "Primary metric: **KL(ref‖model)**", "**Paired by seed**", "w_E=1: 7 (1 dropped: seed 3)",
            "Seeds: 0, 1, 2, 3, 4, 5, 6, 7.", "What this verdict means, and what it does not",
            "Study converged: **yes**",
            "| w1_s0 | 1 | 0 | yes |", "noise floor (mean ± SD, 50 repeats)", "excess over floor",
            "frames_per_replica = 500", "50 repeats", "90% of the repeats pass",
            "a study of 23 perfect-model trials would pass the all-trials gate with probability ≈ 0.9^23 = 0.09",
            "Paired by seed (each weight vs the baseline trial",
            "Unpaired (independent samples; sensitivity check", "Equivalence (sign-flip TOST at ±0.05 nats",
            "Secondary: Holm across 3 metrics × 2 weights", "Friedman across all weights",
            "Minimal detectable effect (80% power, normal differences): |d_z|", "target effect d_z = 1",
            "Student t interval",
            "Primary test: exact sign-flip test", "Only these lines can say \"significant\"",
            "97.5% sign-flip CI", "Smallest number of pairs at which the exact sign-flip test",
            "Measured error rates of this rule", "no line of theirs says \"significant\"",
            "Holm across (secondary metrics × weights)", "two one-sided sign-flip tests",
            "by seeded simulation of normal paired differences", "Convergence gate", "Wilcoxon signed-rank",
            "rank-biserial", "Hedges' g",
            "Cliff's δ", "potential of mean force", "sha256:feedbeef", "abc1234",
            "Every weight's mean primary metric is above the noise floor's 97.5% point (0.06)",
            "| w1_s3 | 1 | 3 | failed | simulate: all 8 replicas blew up", "kl_ref_model 95% CI (within trial)",
            "| w10_s8 | 10 | 8 | running |"):
        assert phrase in md, phrase
    assert "significant worsening" in verdict[1] and verdict[1].startswith("w_E=10 vs 0: KL(ref‖model)")


def test_cli_prints_table_verdict_and_path(analysed):
    study, stdout, _ = analysed
    assert "sign-flip p (Holm)" in stdout and "verdict:" in stdout
    assert re.search(r"w_E=10 vs 0: KL\(ref‖model\): significant worsening \(Δ = [0-9.]+ nats", stdout)
    assert "n = 7 pairs, 1 dropped" in stdout
    assert stdout.strip().endswith(f"report: {study / 'results' / 'report.md'}")


def test_unconverged_study_is_reported_inconclusive(tmp_path, study_factory):
    root = study_factory(tmp_path / "s", converged=False)
    a = _quiet(root)
    assert a.statistics.verdict and {v.status for v in a.statistics.verdict} == {"inconclusive"}
    for line in a.verdict_lines:
        assert "inconclusive: 23 of 23 trials not converged: replicas too short for the slowest implied timescale" \
               " (23), too few folding/unfolding transitions per replica (23), run 50× longer" in line, line
    md = a.report_path.read_text()
    assert "Study converged: **no**" in md and "| w0_s0 | 0 | 0 | no | 50 |" in md
    assert "**Inconclusive** lines mean" in md
    conv = pd.read_csv(root / "results" / "convergence.csv")
    assert len(conv) == 23 and not conv["converged"].any()


def test_missing_convergence_diagnostics_are_inconclusive(tmp_path, study_factory):
    a = _quiet(study_factory(tmp_path / "s", converged=None))
    assert {v.status for v in a.statistics.verdict} == {"inconclusive"}
    assert "convergence not assessed for 23 of 23 trials" in a.verdict_lines[0]
    assert "run longer" in a.verdict_lines[0] and "× longer" not in a.verdict_lines[0]
    assert "| not assessed |" in a.report_path.read_text()


def test_no_noise_floor_says_so_and_a_broken_one_exits_2(tmp_path, study_factory, capsys):
    root = study_factory(tmp_path / "s", floor=False)
    a = _quiet(root)
    md = a.report_path.read_text()
    assert a.floor is None and "No noise floor computed" in md and "excess over floor" not in md
    (root / "prepared" / "noise_floor.json").write_text('{"metrics": {}}')
    assert main(["analyze", str(root), "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "noise_floor.json" in err and "\n" not in err


def test_spec_analysis_section_decides_primary_and_bad_primary_exits_2(tmp_path, study_factory, capsys):
    root = study_factory(tmp_path / "a", analysis={"primary_metric": "w1", "secondary_metrics": ["kl_ref_model"],
                                                  "alpha": 0.01, "equivalence_margin": None,
                                                  "target_effect_size": 2.0})
    a = _quiet(root)
    st = a.statistics
    assert st.primary == "w1" and st.secondary == ["kl_ref_model"] and st.alpha == 0.01
    assert st.power.target_effect_size == 2.0 and all(v.metric == "w1" for v in st.verdict)
    md = a.report_path.read_text()
    assert "no equivalence margin stated" in md
    assert "At w_E = 0 the mean primary metric lies inside the noise floor's 2.5–97.5% range [0.12, 0.24]" in md
    bad = study_factory(tmp_path / "b", analysis={"primary_metric": "coverage"})
    assert main(["analyze", str(bad), "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "coverage" in err and "spec.yaml" in err
    nospec = study_factory(tmp_path / "c")
    (nospec / "spec.yaml").unlink()
    d = _quiet(nospec)
    assert d.statistics.primary == "js_divergence" and "defaults" in d.settings.source


def test_figures_are_real_images(analysed):
    import matplotlib.image as mpimg

    study, _, _ = analysed
    for name in FIGURES:
        img = mpimg.imread(study / "results" / "figures" / name)
        assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 400, (name, img.shape)
        rgb = img[..., :3]
        assert rgb.std() > 0.05, name
        assert (rgb.min(axis=-1) < 0.9).mean() > 0.02, name  # more than a few non-white pixels
        coloured = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.25  # data is drawn in colour, axes in grey
        assert coloured.mean() > 0.002, name


def test_pooled_free_energy_and_kt():
    rng = np.random.default_rng(0)
    hist = np.round(rng.dirichlet(np.ones(50)) * 1e6)
    f = free_energy(hist, KT)
    expect = -KT * np.log(hist / hist.sum())
    assert np.nanmin(f) == 0 and f == pytest.approx(expect - expect.min())
    assert infer_kt(f + 3.0, hist) == pytest.approx(KT, rel=1e-9)
    hist[3] = 0
    assert np.isnan(free_energy(hist, KT)[3])
    assert np.allclose(free_energy(hist + hist, KT), free_energy(hist, KT), equal_nan=True)


def test_no_trials_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "missing"):
        assert main(["analyze", str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and str(target) in err
    with pytest.raises(InputError, match="no trials"):
        trial_table(tmp_path / "empty")


def test_bad_group_metric_or_baseline_exit_2(study, capsys):
    for args in (["--group", "nope"], ["--metrics", "kl_ref_model,nope"], ["--baseline", "5"], ["--alpha", "0.7"],
                 ["--primary-metric", "coverage"]):
        assert main(["analyze", str(study), "--no-figures", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err


def test_all_failed_study_still_reports(tmp_path):
    root = tmp_path / "allfail"
    for i in range(2):
        d = root / "trials" / f"t{i}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"trial_id": f"t{i}", "status": "failed", "error": "boom",
                                                   "config": {"energy_weight": float(i), "seed": 0}, "metrics": {}}))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", str(root)]) == 0
    md = (root / "results" / "report.md").read_text()
    assert "No successful trials" in md and md.count("| failed | boom |") == 2


def test_exploratory_metrics_and_string_weights(tmp_path, study_factory):
    root = study_factory(tmp_path / "s", failed=False, running=False)
    res_path = root / "trials" / "w1_s0" / "result.json"
    res = json.loads(res_path.read_text())
    res["config"]["energy_weight"] = "1"
    res["config"]["model.hidden"] = 128
    res_path.write_text(json.dumps(res))
    a = _quiet(root, metrics=["coverage"])
    assert any("model.hidden" in n and "pools" in n for n in a.notes)
    st = a.statistics
    assert st.groups == [0.0, 1.0, 10.0] and st.exploratory == ["coverage"]
    assert st.metrics["coverage"].role == "exploratory" and "## Exploratory metrics" in a.report_path.read_text()
    assert a.metrics == [*ANALYSED, "coverage"]


def test_report_shows_training_against_the_prior_and_convergence_notes(analysed):
    md = (analysed[0] / "results" / "report.md").read_text()
    train = md.split("## Training: trained models vs the priors alone", 1)[1].split("\n## ", 1)[0]
    # w_E = 0: 4 trials at 25.0 vs the prior-only 26.0 (-3.8%), every one below the prior; best epoch 9 of 10
    assert "| 0 | 8 | 25 ± 0 | 26 | -3.8% [-3.8, -3.8] | 8 | 9–9 of 10 |" in train
    assert "| 10 |" in train and "prior-only" in train
    conv = md.split("## Convergence", 1)[1].split("\n## ", 1)[0]
    assert "| w1_s0 | 1 | 0 | yes | 1 | 12 |  | 6 | 0.1 | one-state model |" in conv
    assert "| w1_s1 | 1 | 1 | yes | 1 | 12 |  | 6 | 0 |  |" in conv
    assert "- *one-state model* (w0_s0, w1_s0, w10_s0); e.g. w0_s0: " + ONE_STATE_NOTE in conv


def test_two_weights_say_friedman_does_not_apply(tmp_path, study_factory):
    root = study_factory(tmp_path / "s", failed=False, running=False, weights=(0.0, 1.0))
    md = _quiet(root).report_path.read_text()
    assert "Friedman across all weights: not applicable (needs ≥ 3 weights" in md and "χ² = ," not in md
    assert "Holm across the 1 weight at family-wise" in md and "Holm across the 1 weight vs the baseline" in md


def test_the_gate_holds_permutation_tests_to_a_study_wide_alpha(tmp_path, study_factory):
    """w0_s0 fails the start-basin test alone (p 0.005 < 0.01) but passes Holm over 23 trials; w0_s1's
    p 1e-4 fails either way: the study is inconclusive for w0_s1 only, and the report says both."""
    root = study_factory(tmp_path / "s", converged=True)
    for tid in sorted(p.name for p in (root / "trials").iterdir()):
        path = root / "trials" / tid / "result.json"
        doc = json.loads(path.read_text()) if path.is_file() else {}
        if doc.get("status") != "ok":
            continue
        p = {"w0_s0": 0.005, "w0_s1": 1e-4}.get(tid, 0.5)
        check = {"p": p, "alpha": 0.01, "finding": "replicas started folded stay more folded",
                 "effect": "folded fraction 0.7 vs 0.6", "meaning": "memory of the starts"}
        doc["convergence"].update(converged=p >= 0.01, failed_checks=[], tests={"start_basins": check})
        path.write_text(json.dumps(doc))
    a = _quiet(root)
    assert "1 of 23 trials not converged: replicas remember their start basin" in a.verdict_lines[0]
    conv = pd.read_csv(root / "results" / "convergence.csv").set_index("trial_id")
    assert bool(conv.loc["w0_s0", "converged"]) and not conv.loc["w0_s0", "converged_alone"]
    assert conv.loc["w0_s0", "p_start_basins_holm"] == pytest.approx(0.11)
    assert not conv.loc["w0_s1", "converged"]
    md = a.report_path.read_text()
    assert "Holm-adjusts each one's p-values over the 23 trials" in md
    assert "pass the study's gate: w0_s0 (start basins: p = 0.005 alone, 0.11 Holm-adjusted)" in md


def test_design_section_defines_the_energy_target(tmp_path, study_factory):
    """The design section names the target's form, TICs, density, bins, flooring and offset handling,
    and states the entropy caveat; a study without an energy term says nothing about a target."""
    import yaml

    study = study_factory(tmp_path / "s", failed=False, running=False)
    spec = yaml.safe_load((study / "spec.yaml").read_text())
    spec["training"] = {"loss": {"energy_target": "tica-marginal", "density": "histogram", "bins": 50,
                                 "n_components": "slow", "offset_invariant": False}}
    (study / "spec.yaml").write_text(yaml.safe_dump(spec))
    rec = {"mode": "tica-marginal", "density": "histogram", "n_components": 1, "bins": 50, "n_floored": 0,
           "n_frames": 28800, "components": {"rule": "slow", "k": 1, "eigenvalues": [0.82]}}
    (study / "prepared" / "targets").mkdir(parents=True)
    (study / "prepared" / "targets" / "abc.json").write_text(json.dumps(rec))
    design = _quiet(study).report_path.read_text().split("## Design", 1)[1].split("\n## ", 1)[0]
    for phrase in ("`training.loss.energy_target: tica-marginal`", "the published form", "1 TIC(s)",
                   "implied timescale exceeds the TICA lag", "eigenvalues 0.82", "50 bins per component",
                   "0 of 28800 frame-components hit the floor", "not offset-invariant", "p(s)·Ω(s)",
                   "fes-corrected"):
        assert phrase in design, phrase
    plain = study_factory(tmp_path / "p", failed=False, running=False)
    assert "Energy target" not in _quiet(plain).report_path.read_text()


def test_support_section_shows_missed_mass_and_kl_over_epsilon(analysed):
    """Missed reference mass per weight, and the paired KL differences at every epsilon the trials report,
    smallest epsilon first, with their spread; the KL primary is warned about."""
    study, _, _ = analysed
    md = (study / "results" / "report.md").read_text()
    sec = md.split("## Support and the KL regulariser", 1)[1].split("\n## ", 1)[0]
    assert "puts ε in every bin the model never visits" in sec
    assert "| ε = 1e-08 | ε = 1e-06 | ε = 0.0001 | ε = 0.001 |" in sec
    t = pd.read_parquet(study / "results" / "trials.parquet")
    ok = t[t["status"] == "ok"]
    rows = [line for line in sec.splitlines() if line.startswith("| 10 |")]
    assert len(rows) == 2  # the missed-mass table and the sensitivity table
    mm = ok[ok["energy_weight"] == 10.0]["missed_reference_mass"]
    assert f"{mm.mean():.3g} [{mm.min():.3g}, {mm.max():.3g}]" in rows[0]
    piv = ok.pivot_table(index="seed", columns="energy_weight", values="kl_ref_model_eps8")
    assert f"{(piv[10.0] - piv[0.0]).mean():.3g}" in rows[1]
