"""The report of a study with grid arms: grouped by arm, paired by seed, the arms named in every
verdict line, the arms and their targets in the design section, the fixed sequence stated."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import yaml

from raycg.cli import main
from raycg.report import run_analysis

ARMS = {"force-matching": {"energy_weight": 0.0},
        "published": {"energy_weight": 1.0, "training.loss.energy_target": "tica-marginal"},
        "corrected": {"energy_weight": 10.0, "training.loss.energy_target": "fes-corrected",
                      "training.loss.base_model": "force-matched"}}
WEIGHT_ARM = {0.0: "force-matching", 1.0: "published", 10.0: "corrected"}


def arm_study(root: Path, study_factory, multiplicity: str = "fixed-sequence",
              order: tuple[str, ...] = ("published", "corrected")) -> Path:
    """The synthetic 3-weight study relabelled as arms (weight 0, 1, 10 -> force-matching, published,
    corrected), with a grid.arms spec and a fes-corrected target record."""
    study = study_factory(root, failed=False, running=False)
    for res_path in (study / "trials").glob("*/result.json"):
        res = json.loads(res_path.read_text())
        res["config"]["arm"] = WEIGHT_ARM[float(res["config"]["energy_weight"])]
        res_path.write_text(json.dumps(res))
    spec = yaml.safe_load((study / "spec.yaml").read_text())
    spec["training"] = {"loss": {"energy_target": "tica-marginal", "density": "histogram", "bins": 50}}
    spec["grid"] = {"seeds": 8, "arms": ARMS, "baseline": "force-matching", "order": list(order),
                    "multiplicity": multiplicity}
    (study / "spec.yaml").write_text(yaml.safe_dump(spec))
    (study / "prepared" / "targets").mkdir(parents=True, exist_ok=True)
    for mode in ("tica-marginal", "fes-corrected"):
        rec = {"mode": mode, "density": "histogram", "n_components": 1, "bins": 50, "n_floored": 3,
               "n_frames": 28800, "components": {"rule": "slow", "k": 1, "eigenvalues": [0.82]}}
        (study / "prepared" / "targets" / f"{mode}.json").write_text(json.dumps(rec))
    return study


def section(md: str, name: str) -> str:
    return md.split(f"## {name}", 1)[1].split("\n## ", 1)[0]


def test_arms_are_compared_with_the_baseline_arm_and_named_in_every_verdict_line(tmp_path, study_factory):
    a = run_analysis(arm_study(tmp_path / "s", study_factory), figures=False)
    st = a.statistics
    assert a.group == "arm" and st.groups == ["force-matching", "published", "corrected"]
    assert st.baseline == "force-matching" and st.multiplicity == "fixed-sequence"
    assert len(a.verdict_lines) == 2
    assert a.verdict_lines[0].startswith("published vs force-matching: ")
    assert a.verdict_lines[1].startswith("corrected vs force-matching: ")
    assert "fixed sequence, step 2 of 2" in a.verdict_lines[1]
    assert int(st.metrics[st.primary].paired["n_pairs"].iloc[0]) == 8  # paired by seed
    assert not any("vary between trials" in n for n in a.notes)  # the arm sets its weight: not pooling
    md = a.report_path.read_text()
    verdict, design = section(md, "Verdict"), section(md, "Design")
    assert "as a fixed sequence in the pre-declared order published → corrected" in verdict
    corrected = next(line for line in design.splitlines() if line.startswith("| corrected | 10 | "))
    assert "`training.loss.energy_target: fes-corrected`" in corrected
    assert "`training.loss.base_model: force-matched`" in corrected
    assert "| force-matching (baseline) | 0 | the spec's values |" in design
    assert "**Multiplicity**: fixed sequence, declared in the spec before any trial ran" in design
    assert "Holm's first step (α/2 = 0.025) needs ≥ 7 pairs; this study has 8" in design
    assert "**Energy target of arm `published`, w_E = 1** (`training.loss.energy_target: tica-marginal`)" in design
    assert "**Energy target of arm `corrected`, w_E = 10** (`training.loss.energy_target: fes-corrected`)" in design
    assert "the `force-matching` arm's trial of the same seed" in design
    assert design.count("p(s)·Ω(s)") == 1
    assert design.count("partly in-sample") == 1 and "in-sample floor" in design
    assert "fixed sequence" in section(md, "Power") and "Spearman" not in section(md, "Primary metric")


def test_holm_arms_and_a_baseline_given_on_the_command_line(tmp_path, study_factory):
    study = arm_study(tmp_path / "h", study_factory, multiplicity="holm", order=("corrected", "published"))
    a = run_analysis(study, figures=False)
    assert a.statistics.groups == ["force-matching", "corrected", "published"]
    assert "(Holm)" in a.verdict_lines[0] and "Holm across the 2 arms" in section(a.report_path.read_text(),
                                                                                  "Verdict")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["analyze", str(study), "--baseline", "published", "--no-figures"])
    assert rc == 0
    assert "force-matching vs published: " in out.getvalue()
    by_weight = run_analysis(study, figures=False, group="energy_weight")
    assert by_weight.group == "energy_weight" and by_weight.verdict_lines[0].startswith("w_E=1 vs 0: ")
