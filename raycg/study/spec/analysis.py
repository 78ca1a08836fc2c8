"""The ``analysis:`` section: what the study's verdict is about (read by ``raycg.report``), and its
design: ``fixed`` (every seed of the grid, one analysis) or ``sequential`` (analyses at ``looks``,
raycg.stats.sequential; :func:`check_sequential_grid` checks the looks against the grid)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from raycg.config import StrictModel
from raycg.evaluate.metric_table import DEFAULT_PRIMARY, find_metric, headline_metrics, primary_candidates

#: fields that only a sequential design uses (left out of a fixed design's dump)
_SEQUENTIAL_FIELDS = ("design", "looks", "spending", "futility", "futility_power")


class AnalysisSpec(StrictModel):
    """One primary metric decides the verdict; the secondary ones are corrected or exploratory."""

    primary_metric: str = Field(DEFAULT_PRIMARY, description="the metric the verdict is about")
    secondary_metrics: list[str] = Field(
        default_factory=list, description="reported with correction across metrics x weights "
                                          "(default: the headline metrics other than the primary)")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="family-wise error rate of the verdict")
    equivalence_margin: float | None = Field(
        None, gt=0, description="TOST margin, in units of the primary metric (null: no equivalence test)")
    target_effect_size: float = Field(
        1.0, gt=0, description="paired standardized effect d_z the study should detect (seeds needed)")
    decision_test: Literal["sign-flip", "paired-t"] = Field(
        "sign-flip", description="test that decides the verdict: sign-flip (exact permutation test of the paired "
                                 "mean, valid at any n without normality; needs 2/2^n <= alpha/weights) or "
                                 "paired-t (assumes normally distributed paired differences)")
    design: Literal["fixed", "sequential"] = Field(
        "fixed", description="fixed: analyse once, after every seed of the grid; sequential: "
                             "analyse at each of `looks`, stopping a weight once it is decided")
    looks: list[int] | None = Field(
        None, description="sequential: seed counts at which to analyse, increasing; the last is "
                          "the grid's seed count (e.g. [3, 5, 8, 12])")
    spending: Literal["obrien-fleming", "pocock"] = Field(
        "obrien-fleming", description="sequential: error-spending function (Lan-DeMets "
                                      "O'Brien-Fleming type: strict early looks; Pocock type: "
                                      "about the same level at every look)")
    futility: Literal["equivalence", "conditional-power", "none"] = Field(
        "equivalence", description="sequential: stop a weight early without an effect when it is "
                                   "shown equivalent within equivalence_margin (TOST at the look's "
                                   "level), or when its conditional power at target_effect_size is "
                                   "below futility_power")
    futility_power: float = Field(
        0.1, gt=0, lt=1, description="sequential, futility conditional-power: stop below this "
                                     "chance of crossing the final boundary at the target effect")

    @model_validator(mode="before")
    @classmethod
    def _default_secondary(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("secondary_metrics") is None:
            primary = data.get("primary_metric", DEFAULT_PRIMARY)
            data = {**data, "secondary_metrics": [m for m in headline_metrics() if m != primary]}
        return data

    @field_validator("primary_metric")
    @classmethod
    def _primary(cls, v: str) -> str:
        if v not in primary_candidates():
            raise ValueError(f"{v!r} cannot be a primary metric; use one of {', '.join(primary_candidates())}")
        return v

    @field_validator("secondary_metrics")
    @classmethod
    def _secondary(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if find_metric(m) is None]
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)} (see raycg/evaluate/METRICS.md)")
        if len(set(v)) != len(v):
            raise ValueError("metrics are listed twice")
        return v

    @model_validator(mode="after")
    def _primary_not_secondary(self) -> AnalysisSpec:
        if self.primary_metric in self.secondary_metrics:
            raise ValueError(f"secondary_metrics: {self.primary_metric!r} is the primary metric")
        return self

    @model_validator(mode="after")
    def _sequential(self) -> AnalysisSpec:
        if self.design == "fixed":
            if self.looks is not None:
                raise ValueError("looks: only with design: sequential (a fixed design analyses "
                                 "once)")
            return self
        looks = self.looks
        if not looks or len(looks) < 2:
            raise ValueError("looks: design: sequential needs at least 2 looks (seed counts), "
                             "e.g. [3, 5, 8, 12]")
        if looks[0] < 2:
            raise ValueError(f"looks: the first look has {looks[0]} seed(s); a paired test needs "
                             "at least 2")
        if any(b <= a for a, b in zip(looks, looks[1:])):
            raise ValueError(f"looks: seed counts must increase strictly, got {looks}")
        if self.futility == "equivalence" and self.equivalence_margin is None:
            raise ValueError("futility: equivalence needs analysis.equivalence_margin; set one, "
                             "or futility: conditional-power or none")
        return self

    @model_serializer(mode="wrap")
    def _omit_sequential(self, handler: Any) -> dict[str, Any]:
        """A fixed design dumps what it did before sequential designs existed (so do spec hashes)."""
        data = handler(self)
        if self.design == "fixed":
            for key in _SEQUENTIAL_FIELDS:
                data.pop(key, None)
        return data

    @field_validator("equivalence_margin", "target_effect_size")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be finite")
        return v


def check_sequential_grid(analysis: AnalysisSpec, n_seeds: int, n_weights: int) -> None:
    """ValueError naming ``analysis.looks`` unless a sequential design fits the grid: the last look
    is the grid's seed count; at every look the decision test can reach a level that stops a weight
    (the efficacy level of the design at α/m, m = weights compared, or the futility rule's); at the
    last look, its efficacy level. Nothing to check for a fixed design."""
    if analysis.design != "sequential" or not analysis.looks:
        return
    looks, m = analysis.looks, max(n_weights - 1, 1)
    if looks[-1] != n_seeds:
        raise ValueError(f"analysis.looks: the last look ({looks[-1]} seeds) must be the grid's "
                         f"seed count ({n_seeds}): a sequential study's largest size is its grid")
    from raycg.stats.sequential import look_levels, smallest_level

    test, a = analysis.decision_test, analysis.alpha / m
    eff = look_levels(looks, looks[-1], a, analysis.spending, 2, len(looks))
    eq = look_levels(looks, looks[-1], a, analysis.spending, 1, len(looks))
    name = "exact sign-flip test" if test == "sign-flip" else "paired t-test"
    level = f"α/{m} = {a:.3g}" if m > 1 else f"α = {a:.3g}"
    for k, n in enumerate(looks):
        low2, low1 = smallest_level(n, test, 2), smallest_level(n, test, 1)
        reach_eff = low2 <= eff[k]
        if k == len(looks) - 1 and not reach_eff:
            raise ValueError(f"analysis.looks: at the last look ({n} seeds) the {name} cannot "
                             f"reach its efficacy level {eff[k]:.3g} (design at {level}; "
                             f"smallest p {low2:.3g}); more seeds are needed")
        by_eq = analysis.futility == "equivalence"
        reach_fut = (by_eq and low1 <= eq[k]) or analysis.futility == "conditional-power"
        if not (reach_eff or reach_fut):
            eq_text = (f" and its smallest one-sided p {low1:.3g} above the equivalence level "
                       f"{eq[k]:.3g}" if by_eq else "")
            raise ValueError(f"analysis.looks: at {n} seeds the {name} cannot stop a weight: its "
                             f"smallest p {low2:.3g} is above the look's efficacy level "
                             f"{eff[k]:.3g} (design at {level}){eq_text}; drop that look, look "
                             "later, or use decision_test: paired-t")
