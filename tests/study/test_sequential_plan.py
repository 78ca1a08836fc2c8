"""The sequential study planner without Ray: spec fields, look-by-look decisions, the seeds of the
next wave, the binding record in the study folder (resume), and the report's section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from raycg.errors import ConfigError
from raycg.stats import sequential as sq
from raycg.study.sequential import RECORD, SequentialPlan, load_record, plan_next_look
from raycg.study.spec import spec_from_any
from raycg.study.storage import Store

METRIC = "js_divergence"  # lower is better


def spec_dict(looks=(9, 10, 12), weights=(0, 1, 2), seeds=None, **analysis) -> dict:
    a = {
        "primary_metric": METRIC,
        "secondary_metrics": [],
        "design": "sequential",
        "looks": list(looks),
        "equivalence_margin": 0.02,
        **analysis,
    }
    return {
        "name": "seq",
        "pipeline": "toy",
        "grid": {"energy_weights": list(weights), "seeds": looks[-1] if seeds is None else seeds},
        "analysis": a,
    }


def make_spec(*args, **kwargs):
    return spec_from_any(spec_dict(*args, **kwargs))


def values(n_seeds: int, effects=(0.0, -0.1, 0.0), seed: int = 3) -> pd.DataFrame:
    """One ok trial per (weight, seed): a shared seed effect, small noise, a shift per weight."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_seeds):
        se = rng.normal(0, 0.05)
        for w, e in zip((0.0, 1.0, 2.0), effects, strict=False):
            rows.append(
                {
                    "trial_id": f"w{w:g}_s{s}",
                    "status": "ok",
                    "energy_weight": w,
                    "seed": s,
                    METRIC: 0.3 + se + rng.normal(0, 0.02) + e,
                    "converged": True,
                }
            )
    return pd.DataFrame(rows)


# --- spec fields ----------------------------------------------------------------------------------


def test_fixed_is_the_default_and_takes_no_looks() -> None:
    spec = spec_from_any({"name": "f", "pipeline": "toy", "grid": {"energy_weights": [0, 1]}})
    assert spec.analysis.design == "fixed" and spec.analysis.looks is None
    with pytest.raises(ConfigError, match="looks: only with design: sequential"):
        spec_from_any(
            {
                "name": "f",
                "pipeline": "toy",
                "grid": {"energy_weights": [0, 1]},
                "analysis": {"looks": [3, 6]},
            }
        )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"looks": [8]}, "looks: design: sequential needs at least 2 looks"),
        ({"looks": [1, 12]}, "looks: the first look has 1 seed"),
        ({"looks": [10, 8, 12]}, "looks: seed counts must increase strictly"),
        ({"equivalence_margin": None}, "futility: equivalence needs analysis.equivalence_margin"),
        ({"spending": "linear"}, "spending"),
        ({"futility": "maybe"}, "futility"),
    ],
)
def test_bad_sequential_fields_name_the_field(change: dict, message: str) -> None:
    d = spec_dict()
    d["analysis"].update(change)
    with pytest.raises(ConfigError, match=message):
        spec_from_any(d)


def test_looks_must_fit_the_grid_and_the_test() -> None:
    with pytest.raises(
        ConfigError, match=r"analysis.looks: the last look \(10 seeds\).*seed count"
    ):
        make_spec(looks=(8, 10), seeds=12)
    with pytest.raises(
        ConfigError, match="analysis.looks: at 3 seeds the exact sign-flip test cannot"
    ):
        make_spec(looks=(3, 5, 8, 12))
    with pytest.raises(ConfigError, match="at the last look .* cannot reach its efficacy level"):
        make_spec(looks=(3, 5), weights=(0, 1), futility="conditional-power")
    assert make_spec(looks=(3, 5, 8, 12), decision_test="paired-t").analysis.looks == [3, 5, 8, 12]
    assert (
        make_spec(looks=(3, 5), weights=(0, 1), decision_test="paired-t").analysis.design
        == "sequential"
    )


# --- the planner ----------------------------------------------------------------------------------


def test_plan_runs_look_by_look_and_stops_decided_weights() -> None:
    spec, table = make_spec(), values(12)
    first = plan_next_look(spec, table.iloc[:0])
    assert isinstance(first, SequentialPlan) and (first.look, first.seeds, first.finished) == (
        1,
        9,
        False,
    )
    assert first.seeds_to_run == {0.0: list(range(9)), 1.0: list(range(9)), 2.0: list(range(9))}
    partial = plan_next_look(
        spec, table[(table.seed < 9) & ~((table.seed == 7) & (table.energy_weight == 2))]
    )
    assert partial.look == 1 and partial.seeds_to_run == {2.0: [7]}
    after = plan_next_look(spec, table[table.seed < 9])
    assert (
        after.decisions[1.0].state == "efficacy"
        and after.decisions[1.0].status == "significant improvement"
    )
    assert after.decisions[2.0].state == "continue" and after.decisions[2.0].look == 1
    assert (after.look, after.seeds) == (2, 10) and after.seeds_to_run == {0.0: [9], 2.0: [9]}
    done = plan_next_look(spec, table)
    assert done.finished and done.seeds_to_run == {}
    d1, d2 = done.decisions[1.0], done.decisions[2.0]
    assert d1.look == 1 and d1.p <= d1.level and d1.adjusted_p <= 0.025
    assert np.isfinite(d1.ci_low) and d1.ci_high < 0 and d1.ci_level > 0.95
    assert d2.state in ("equivalence", "max") and d2.status in (
        "equivalent",
        "no significant difference",
    )
    assert done.trials_fixed == 36 and done.trials_planned == 9 + 2 * d2.seeds
    assert "sign-flip p" in d1.reason and "α/2" in d1.reason


def test_unconverged_look_cannot_stop_and_ends_inconclusive() -> None:
    spec, table = make_spec(), values(12)
    table["converged"] = False
    plan = plan_next_look(spec, table[table.seed < 9])
    assert not any(d.decided for d in plan.decisions.values())
    assert "not converged" in plan.decisions[1.0].reason
    end = plan_next_look(spec, table)
    assert end.finished and {d.status for d in end.decisions.values()} == {"inconclusive"}
    assert {d.state for d in end.decisions.values()} == {"max"}


def test_convergence_callable_gets_the_looks_trials() -> None:
    seen: list[tuple[int, set]] = []

    def gate(trials: pd.DataFrame) -> tuple[bool, list[str]]:
        seen.append((len(trials), set(trials["energy_weight"])))
        return len(trials) > 27, ["too few"]

    plan = plan_next_look(make_spec(), values(12).drop(columns="converged"), convergence=gate)
    assert seen[0] == (27, {0.0, 1.0, 2.0})  # look 1: every weight and the baseline, 9 seeds each
    assert plan.decisions[1.0].state == "efficacy" and plan.decisions[1.0].look == 2
    with pytest.raises(Exception, match="converged"):
        plan_next_look(make_spec(), values(9).drop(columns="converged"))


def test_failed_trials_drop_pairs_and_are_not_rerun() -> None:
    spec, table = make_spec(), values(12)
    bad = (table.energy_weight == 1.0) & (table.seed == 2)
    table.loc[bad, "status"], table.loc[bad, METRIC] = "failed", np.nan
    plan = plan_next_look(spec, table[table.seed < 9])
    assert plan.decisions[1.0].n_pairs == 8 and plan.decisions[2.0].n_pairs == 9
    assert 2 not in plan.seeds_to_run.get(1.0, [])


def test_grid_seed_ids_are_used() -> None:
    spec = make_spec(seeds=[5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27])
    plan = plan_next_look(spec, values(0))
    assert plan.seeds_to_run[0.0] == [5, 7, 9, 11, 13, 15, 17, 19, 21]


def test_planner_equals_the_vectorised_rule() -> None:
    """Random studies (some null, some with an effect) through both paths: the same decisions
    (here: efficacy at looks 2 to 3, equivalence at looks 3 and 4, the last look reached)."""
    rng = np.random.default_rng(21)
    looks = (3, 5, 8, 12)
    spec = make_spec(looks=looks, decision_test="paired-t", equivalence_margin=1.5)
    names = (
        "significant improvement",
        "significant worsening",
        "equivalent",
        "no significant difference",
        "inconclusive",
    )
    for i in range(12):
        x = rng.normal(0, 0.7, (1, 12)) + rng.normal(0, 1, (3, 12))
        x[1] -= 2.5 * (i % 2)
        d = x[1:] - x[:1]
        res = [sq.look_tests(d[:, :n], "paired-t", 1.5) for n in looks]
        st = sq.sequential_decisions(
            np.stack([r["p"] for r in res]),
            np.stack([r["mean"] < 0 for r in res]),
            sq.level_table(np.array(looks), 12, 0.05, weights=2),
            tost_p=np.stack([r["tost_p"] for r in res]),
            eq_levels=sq.level_table(np.array(looks), 12, 0.05, "obrien-fleming", 1, weights=2),
        )
        table = pd.DataFrame(
            [
                {
                    "status": "ok",
                    "energy_weight": float(w),
                    "seed": s,
                    METRIC: x[j, s],
                    "converged": True,
                }
                for j, w in enumerate((0, 1, 2))
                for s in range(12)
            ]
        )
        plan = plan_next_look(spec, table)
        assert [(dec.look - 1, dec.status) for dec in plan.decisions.values()] == [
            (int(st["look"][j]), names[int(st["status"][j])]) for j in range(2)
        ]


# --- the record: binding decisions, resume --------------------------------------------------------


def test_record_is_written_read_back_and_binding(tmp_path: Path) -> None:
    spec, table = make_spec(), values(12)
    store = Store(str(tmp_path))
    first = plan_next_look(spec, table[table.seed < 9], store=store)
    rec = json.loads((tmp_path / RECORD).read_text())
    assert rec["format"] == "raycg-sequential-decisions" and len(rec["looks"]) == 1
    assert rec["decisions"]["1.0"]["state"] == "efficacy"
    # the same look's trials changed afterwards (a re-run): the recorded decision stands
    changed = table.copy()
    changed.loc[changed.energy_weight == 1.0, METRIC] += 0.1
    again = plan_next_look(spec, changed[changed.seed < 9], store=store)
    assert again.decisions[1.0] == first.decisions[1.0]
    fresh = plan_next_look(spec, changed[changed.seed < 9])
    assert fresh.decisions[1.0].state == "continue"
    # a resumed study continues at look 2 and appends it
    nxt = plan_next_look(spec, table[table.seed < 10], store=store)
    assert len(load_record(store)["looks"]) == 2 and nxt.decisions[1.0] == first.decisions[1.0]
    # read-only planning (the report) leaves the record as it was
    plan_next_look(spec, table, store=store, persist=False)
    assert len(load_record(store)["looks"]) == 2


def test_changed_design_is_refused(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    plan_next_look(make_spec(), values(9), store=store)
    with pytest.raises(
        ConfigError, match="analysis.spending changed since the sequential study started"
    ):
        plan_next_look(make_spec(spending="pocock"), values(9), store=store)
    (tmp_path / RECORD).write_text("{broken")
    with pytest.raises(Exception, match="not a readable sequential record"):
        plan_next_look(make_spec(), values(9), store=store)


def test_fixed_spec_is_not_planned() -> None:
    spec = spec_from_any({"name": "f", "pipeline": "toy", "grid": {"energy_weights": [0, 1]}})
    with pytest.raises(ConfigError, match="declare analysis.design: sequential"):
        plan_next_look(spec, values(3))


# --- the report -----------------------------------------------------------------------------------


def _study(root: Path, design: dict, n_seeds: int = 12) -> Path:
    root.mkdir(parents=True)
    (root / "spec.yaml").write_text(yaml.safe_dump(design))
    for _, r in values(n_seeds).iterrows():
        d = root / "trials" / r["trial_id"]
        d.mkdir(parents=True)
        (d / "result.json").write_text(
            json.dumps(
                {
                    "trial_id": r["trial_id"],
                    "status": "ok",
                    "config": {"energy_weight": r["energy_weight"], "seed": int(r["seed"])},
                    "metrics": {METRIC: r[METRIC]},
                    "convergence": {
                        "converged": True,
                        "reasons": [],
                        "diagnostics": {"run_longer_factor": 1.0},
                    },
                }
            )
        )
    return root


def test_report_states_design_stops_and_savings(tmp_path: Path) -> None:
    from raycg.report.analyze import run_analysis

    root = _study(tmp_path / "seq", spec_dict())
    text = run_analysis(root, figures=False).report_path.read_text()
    sec = text[text.index("## Sequential design") : text.index("## Verdict")]
    assert "no look has been analysed yet" in sec and "9 seeds of every weight" in sec
    assert not (root / RECORD).exists()  # the report does not decide
    # the driver's planner records the looks; the report shows what it recorded
    plan = plan_next_look(make_spec(), values(12), store=Store(str(root)))
    text = run_analysis(root, figures=False).report_path.read_text()
    sec = text[text.index("## Sequential design") : text.index("## Verdict")]
    assert "looks at 9, 10, 12 seeds" in sec and "O'Brien–Fleming" in sec and "Stopping rule" in sec
    assert "| w_E = 1 | look 1 (9 seeds) | significant improvement" in sec
    assert "boundary-adjusted p" in sec and "repeated CI" in sec and "trials saved" in sec
    saved = plan.trials_fixed - plan.trials_planned
    assert f"{saved} trials saved" in sec and saved > 0
    (root / RECORD).write_text("{broken")
    text = run_analysis(root, figures=False).report_path.read_text()
    assert "decisions could not be read" in text
    fixed = spec_dict()
    fixed["analysis"] = {"primary_metric": METRIC, "secondary_metrics": []}
    plain = run_analysis(_study(tmp_path / "fixed", fixed), figures=False).report_path.read_text()
    assert "## Sequential design" not in plain


def test_fixed_dump_is_unchanged_and_the_sequential_quickstart_loads() -> None:
    from raycg.study.spec import load_spec

    fixed = spec_from_any({"name": "f", "pipeline": "toy", "grid": {"energy_weights": [0, 1]}})
    assert not {"design", "looks", "spending", "futility"} & set(fixed.model_dump(mode="json")["analysis"])
    seq = make_spec().model_dump(mode="json")["analysis"]
    assert seq["design"] == "sequential" and seq["looks"] == [9, 10, 12]
    root = Path(__file__).resolve().parents[2]
    spec = load_spec(root / "studies" / "quickstart_sequential.yaml")
    assert spec.analysis.looks == [3, 5] and spec.grid.energy_weights == [0.0, 1.0]
    assert spec.analysis.decision_test == "paired-t" and len(spec.grid.seed_list()) == 5
