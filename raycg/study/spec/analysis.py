"""The ``analysis:`` section: what the study's verdict is about (read by ``raycg.report``)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from raycg.config import StrictModel
from raycg.evaluate.metric_table import DEFAULT_PRIMARY, find_metric, headline_metrics, primary_candidates


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

    @field_validator("equivalence_margin", "target_effect_size")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be finite")
        return v
