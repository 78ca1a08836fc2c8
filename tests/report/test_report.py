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
from raycg.report import trial_table
from raycg.report.figures import free_energy, infer_kt
from raycg.units import kbt

KT = kbt(300.0)
WEIGHTS, SEEDS = (0.0, 1.0, 10.0), (0, 1, 2)  # as in conftest.make_study

FIGURES = ("fes_pooled.png", "fes_difference.png", "metrics_vs_weight.png", "trapping.png", "training_curves.png")
TESTED = {"kl_ref_model", "kl_model_ref", "js", "w1", "fes_mse", "coverage", "transitions_per_replica_mean",
          "deepest_well_excess", "blown_up_fraction"}


@pytest.fixture(scope="module")
def analysed(study):
    """Run the CLI once for the module: (study dir, stdout, exit code)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["analyze", str(study), "--resamples", "999"])
    return study, out.getvalue(), rc


def test_trial_table_keeps_every_trial(study):
    t = trial_table(study)
    assert len(t) == len(WEIGHTS) * len(SEEDS) + 2
    assert t["status"].value_counts().to_dict() == {"ok": 9, "failed": 1, "running": 1}
    failed = t.set_index("trial_id").loc["w1_s3"]
    assert failed["status"] == "failed" and "blew up" in failed["error"]
    assert np.isnan(failed["kl_ref_model"]) and failed["energy_weight"] == 1.0
    running = t.set_index("trial_id").loc["w10_s4"]
    assert running["status"] == "running" and running["phase"] == "train" and running["seed"] == 4
    for col in ("energy_weight", "seed", "model.hidden", "kl_ref_model", "js", "w1", "fes_mse", "coverage",
                "runtime_s", "error"):
        assert col in t.columns
    assert set(t.attrs["metrics"]) >= {"kl_ref_model", "coverage"}
    ok = t[t["status"] == "ok"]
    assert ok["kl_ref_model"].notna().all() and (ok["runtime_s"] >= 100).all()


def test_unreadable_result_is_a_row(tmp_path, study_factory):
    root = study_factory(tmp_path / "s", failed=False, running=False)
    bad = root / "trials" / "broken"
    bad.mkdir()
    (bad / "result.json").write_text("{not json")
    t = trial_table(root).set_index("trial_id")
    assert t.loc["broken", "status"] == "unreadable" and "result.json" in t.loc["broken", "error"]


def test_analyze_writes_every_file(analysed):
    study, stdout, rc = analysed
    assert rc == 0
    res = study / "results"
    for rel in ("trials.parquet", "summary.csv", "report.md", *(f"figures/{f}" for f in FIGURES)):
        assert (res / rel).is_file() and (res / rel).stat().st_size > 0, rel
    assert not [p for p in res.rglob("*") if ".tmp" in p.name]  # atomic writes left nothing behind
    trials = pd.read_parquet(res / "trials.parquet")
    assert len(trials) == 11
    assert trials.set_index("trial_id").loc["w1_s3", "status"] == "failed"
    summary = pd.read_csv(res / "summary.csv")
    assert set(summary["metric"]) == TESTED  # constant metrics are left out (and said so in the report)
    assert summary["metric"].iloc[0] == "kl_ref_model"  # headline metrics first
    assert len(summary) == len(TESTED) * len(WEIGHTS)
    assert {"welch_p_holm", "mwu_p_holm", "perm_p_holm", "hedges_g", "cliffs_delta", "seeds_needed"} <= set(summary)
    row = summary[(summary.metric == "kl_ref_model") & (summary.group == 1.0)].iloc[0]
    assert row["n"] == 3 and row["n_missing"] == 1  # the failed trial counts as missing


def test_report_content(analysed):
    study, _, _ = analysed
    md = (study / "results" / "report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (study / "results" / link).is_file(), link
    assert {Path(x).name for x in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)} == set(FIGURES)
    assert re.search(r"\| w1_s3 \| 1 \| 3 \| failed \| simulate: all 8 replicas blew up", md)
    assert "| w10_s4 | 10 | 4 | running |" in md
    for phrase in ("Holm", "Welch", "Mann–Whitney", "permutation", "Hedges' g", "Cliff's δ", "Kruskal–Wallis",
                   "Spearman", "KL(ref‖model)", "80% power", "potential of mean force", "sha256:feedbeef",
                   "abc1234", "Sensitivity: with 3 seeds per weight", "Not tested (identical in every successful trial): n_replicas_total, "
                   "folded_fraction_reference"):
        assert phrase in md, phrase


def test_cli_prints_table_verdict_and_path(analysed):
    study, stdout, _ = analysed
    assert "welch holm p" in stdout
    assert re.search(r"w_E=10 vs 0: KL\(ref‖model\) higher by [0-9.]+ \(\d+%\), worse, Holm p[<=][0-9.]+, significant",
                     stdout)
    assert "not significant" in stdout  # w1 is noise at 3 seeds
    assert stdout.strip().endswith(f"report: {study / 'results' / 'report.md'}")


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
    p = rng.dirichlet(np.ones(50))
    hist = np.round(p * 1e6)
    f = free_energy(hist, KT)
    expect = -KT * np.log(hist / hist.sum())
    assert np.nanmin(f) == 0 and f == pytest.approx(expect - expect.min())
    assert infer_kt(f + 3.0, hist) == pytest.approx(KT, rel=1e-9)
    hist[3] = 0
    assert np.isnan(free_energy(hist, KT)[3])
    two = free_energy(hist + hist, KT)  # pooling identical trials leaves F unchanged
    assert np.allclose(two, free_energy(hist, KT), equal_nan=True)


def test_no_trials_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "missing"):
        assert main(["analyze", str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and str(target) in err
    with pytest.raises(InputError, match="no trials"):
        trial_table(tmp_path / "empty")


def test_bad_group_metric_or_baseline_exit_2(study, capsys):
    for args in (["--group", "nope"], ["--metrics", "kl_ref_model,nope"], ["--baseline", "5"]):
        assert main(["analyze", str(study), "--no-figures", "--resamples", "99", *args]) == 2
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
        assert main(["analyze", str(root), "--resamples", "99"]) == 0
    md = (root / "results" / "report.md").read_text()
    assert "No successful trials" in md and md.count("| failed | boom |") == 2


def test_scores_json_fills_metrics_and_string_weights(tmp_path, study_factory):
    from raycg.report import run_analysis

    root = study_factory(tmp_path / "s", failed=False, running=False)
    res_path = root / "trials" / "w1_s0" / "result.json"
    res = json.loads(res_path.read_text())
    expect = res["metrics"]["kl_ref_model"]
    res["metrics"] = {"final_train_loss": 1.5}
    res["config"]["energy_weight"] = "1"
    res_path.write_text(json.dumps(res))
    t = trial_table(root).set_index("trial_id")
    assert t.loc["w1_s0", "kl_ref_model"] == expect and t.loc["w1_s0", "final_train_loss"] == 1.5
    res["config"]["model.hidden"] = 128
    res_path.write_text(json.dumps(res))
    a = run_analysis(root, ["kl_ref_model"], figures=False, n_resamples=99)
    assert any("model.hidden" in n and "pools" in n for n in a.notes)
    d = a.results["descriptives"].set_index("group")
    assert list(d.index) == [0.0, 1.0, 10.0] and d.loc[1.0, "n"] == 3
    assert a.results["trend"]["rho"].notna().all()
