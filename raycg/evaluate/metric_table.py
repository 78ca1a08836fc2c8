"""The one table of raycg's trial metrics: name, label, unit, direction, role.

Every other package (``stats``, ``report``, ``study``) reads a metric's direction, label and unit
from here; nothing else keeps a copy. Per-TIC variants (``kl_ref_model_tic1``) inherit the spec of
their family. ``METRICS.md`` beside this file documents the formulas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from raycg.errors import InputError

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric means and how it is compared.

    ``direction``: which way is better ("lower"/"higher"); None for descriptive quantities (counts,
    populations) that are compared with the reference through a separate error metric.
    ``can_be_primary``: a scalar score of agreement with the reference that a study may name as its
    primary metric. ``headline``: shown by default in tables, figures and the CLI verdict.
    ``has_floor``: a perfect model under the same protocol does not score 0 (finite-sample
    divergences), so the report shows the noise floor and the excess over it.
    """

    name: str
    label: str
    unit: str
    direction: Direction | None
    description: str
    can_be_primary: bool = False
    headline: bool = False
    has_floor: bool = False


def _m(name: str, label: str, unit: str, direction: Direction | None, description: str, **kw: bool) -> MetricSpec:
    return MetricSpec(name, label, unit, direction, description, **kw)


_TABLE: tuple[MetricSpec, ...] = (
    _m("kl_ref_model", "KL(ref‖model)", "nats", "lower",
       "KL divergence of the model's 2-D TIC histogram from the reference's, ε = kl_epsilon (1e-6) in every "
       "cell; punishes missing reference states, by an amount set by ε where the model never visits "
       "(kl_ref_model_eps8/_eps4/_eps3 show the sensitivity)",
       can_be_primary=True, headline=True, has_floor=True),
    _m("kl_ref_model_eps8", "KL(ref‖model), ε = 1e-8", "nats", "lower",
       "KL(ref‖model) of the same histograms with ε = 1e-8 (regulariser sensitivity)"),
    _m("kl_ref_model_eps4", "KL(ref‖model), ε = 1e-4", "nats", "lower",
       "KL(ref‖model) of the same histograms with ε = 1e-4 (regulariser sensitivity)"),
    _m("kl_ref_model_eps3", "KL(ref‖model), ε = 1e-3", "nats", "lower",
       "KL(ref‖model) of the same histograms with ε = 1e-3 (regulariser sensitivity)"),
    _m("kl_model_ref", "KL(model‖ref)", "nats", "lower",
       "KL divergence of the reference's 2-D TIC histogram from the model's; punishes states the reference lacks",
       can_be_primary=True, has_floor=True),
    _m("js_divergence", "JS divergence", "nats", "lower",
       "Jensen–Shannon divergence of the 2-D TIC histograms (symmetric, bounded by ln 2)",
       can_be_primary=True, headline=True, has_floor=True),
    _m("w1", "W1 (TIC space)", "TIC units", "lower",
       "Wasserstein-1 distance between model and reference samples in the 2-D TIC plane "
       "(exact optimal transport on a 24x24 grid)",
       can_be_primary=True, headline=True, has_floor=True),
    _m("fes_mse_aligned", "FES MSE, aligned", "(kcal/mol)²", "lower",
       "mean squared FES difference over bins populated in both, after the optimal constant offset",
       can_be_primary=True, headline=True, has_floor=True),
    _m("fes_mse", "FES MSE, min-shifted", "(kcal/mol)²", "lower",
       "mean squared FES difference with each FES shifted to its own minimum (noisy; kept for comparison)",
       has_floor=True),
    _m("coverage", "coverage", "fraction", "higher",
       "fraction of reference-populated bins the model populates", has_floor=True),
    _m("coverage_weighted", "coverage (weighted)", "fraction", "higher",
       "reference probability in bins the model populates", has_floor=True),
    _m("missed_reference_mass", "missed reference mass", "fraction", "lower",
       "reference probability in 2-D TIC bins the model never visits (1 − weighted coverage)", has_floor=True),
    _m("outside_grid_fraction", "outside-grid fraction", "fraction", "lower",
       "model frames outside the reference FES grid"),
    _m("folded_fraction_abs_error", "|folded fraction error|", "fraction", "lower",
       "|folded population of the model − that of the reference| (Cα RMSD to native below folded_rmsd_A)",
       can_be_primary=True, headline=True, has_floor=True),
    _m("folded_fraction_model", "folded fraction (model)", "fraction", None, "folded population of the model"),
    _m("folded_fraction_reference", "folded fraction (reference)", "fraction", None,
       "folded population of the reference"),
    _m("folded_fraction_diff", "folded fraction difference", "fraction", None, "model − reference"),
    _m("mirror_folded_fraction_model", "mirror-folded fraction", "fraction", "lower",
       "model frames closer to the mirror image of the native structure than to the native"),
    _m("folding_transition_rate_log_ratio_abs", "|ln folding-rate ratio|", "", "lower",
       "|ln(model folding-transition rate / reference rate)| with pseudo-counts",
       can_be_primary=True, headline=True, has_floor=True),
    _m("folding_transitions_per_replica_mean", "folding transitions per replica", "count", None,
       "committed folding + unfolding events per model replica (RMSD hysteresis)"),
    _m("transitions_per_replica_mean", "TIC-basin transitions per replica", "count", None,
       "committed transitions between reference TIC basins per model replica"),
    _m("deepest_well_excess", "deepest-well excess population", "fraction", None,
       "model population of the reference's deepest basin − the reference's (trapping when > 0)"),
    _m("trapped_fraction_mean", "trapped fraction", "fraction", None,
       "fraction of replicas that never leave their first basin"),
    _m("blown_up_fraction", "blown-up replica fraction", "fraction", "lower", "replicas that blew up"),
    _m("n_blown_up", "blown-up replicas", "count", "lower", "number of replicas that blew up"),
    _m("replica_time_lost_fraction", "replica-time lost to blow-ups", "fraction", "lower",
       "planned replica-time after the blow-ups / planned replica-time (penalised in KL, JS and W1)"),
    _m("converged", "converged", "1/0", None,
       "1 when every convergence diagnostic passes (scores.json → convergence has the reasons)"),
    # descriptive quantities (compare model with reference; counts)
    _m("mirror_fraction_model", "mirror fraction (model)", "fraction", None,
       "model frames closer to the mirror image of native than to native"),
    _m("mirror_fraction_reference", "mirror fraction (reference)", "fraction", None,
       "reference frames closer to the mirror image of native than to native"),
    _m("mirror_folded_fraction_reference", "mirror-folded fraction (reference)", "fraction", None,
       "reference frames folded into the mirror image"),
    _m("rmsd_mean_model_A", "mean Cα RMSD to native (model)", "Å", None, "mean Cα RMSD of model frames to native"),
    _m("n_basins", "reference TIC basins", "count", None, "basins of the reference FES"),
    _m("transitions_per_replica_median", "TIC-basin transitions per replica (median)", "count", None,
       "median core-to-core transitions per model replica"),
    _m("transitions_per_trajectory_mean_reference", "TIC-basin transitions per trajectory (reference)", "count",
       None, "core-to-core transitions per reference trajectory"),
    _m("transition_rate_per_ns_model", "TIC-basin transition rate (model)", "1/ns", None,
       "transitions per simulated ns of the model (CG time)"),
    _m("transition_rate_per_ns_reference", "TIC-basin transition rate (reference)", "1/ns", None,
       "transitions per ns of the reference"),
    _m("transition_rate_ratio", "TIC-basin transition-rate ratio", "ratio", None, "model rate / reference rate"),
    _m("folding_transitions_per_trajectory_mean_reference", "folding transitions per trajectory (reference)",
       "count", None, "committed folding + unfolding events per reference trajectory"),
    _m("folding_transition_rate_per_ns_model", "folding-transition rate (model)", "1/ns", None,
       "folding + unfolding events per simulated ns of the model (CG time)"),
    _m("folding_transition_rate_per_ns_reference", "folding-transition rate (reference)", "1/ns", None,
       "folding + unfolding events per ns of the reference"),
    _m("folding_transition_rate_ratio", "folding-transition rate ratio", "ratio", None,
       "model rate / reference rate (no pseudo-counts)"),
    _m("deepest_well_population_model", "deepest-well population (model)", "fraction", None,
       "model probability of the reference's deepest basin"),
    _m("deepest_well_population_reference", "deepest-well population (reference)", "fraction", None,
       "reference probability of its deepest basin"),
    _m("max_basin_population_model", "largest basin population (model)", "fraction", None,
       "population of the model's most populated basin"),
    _m("trapped_fraction_mean_reference", "trapped fraction (reference)", "fraction", None,
       "mean over reference trajectories of the fraction of frames in their most visited basin"),
    _m("n_frames_model", "model frames scored", "count", None, "model frames after burn-in"),
    _m("n_replicas_used", "replicas scored", "count", None, "replicas with frames after burn-in"),
    _m("n_replicas_total", "replicas", "count", None, "replicas found"),
)

METRICS: Mapping[str, MetricSpec] = MappingProxyType({m.name: m for m in _TABLE})


#: Suffixes of derived columns: per-TIC variants (``_tic1``) and bootstrap interval bounds (``_ci_low``).
_SUFFIX = re.compile(r"(_tic\d+)?(_ci_low|_ci_high)?$")


def _family(name: str) -> str:
    return _SUFFIX.sub("", name, count=1)


def find_metric(name: str) -> MetricSpec | None:
    """The spec of ``name`` (per-TIC variants and ``_ci_low``/``_ci_high`` bounds map to their family),
    or None if raycg does not define it."""
    return METRICS.get(name) or METRICS.get(_family(name))


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name``; an unknown name is an :class:`InputError` listing the known ones."""
    spec = find_metric(name)
    if spec is None:
        raise InputError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
    return spec


def metric_direction(name: str) -> Direction | None:
    """Which way is better for ``name`` (None: descriptive, or not a raycg metric)."""
    spec = find_metric(name)
    return spec.direction if spec else None


def metric_label(name: str) -> str:
    """Human label (states the KL direction), falling back to the name."""
    spec = find_metric(name)
    if spec is None:
        return name
    return spec.label if spec.name == name else f"{spec.label} [{name[len(spec.name) + 1:]}]"


#: The primary metric when a spec names none: bounded (≤ ln 2) and free of any regulariser, so a model that
#: misses reference mass is scored by what it misses, not by an ε put into its empty bins.
DEFAULT_PRIMARY = "js_divergence"


def headline_metrics() -> list[str]:
    return [m.name for m in _TABLE if m.headline]


def primary_candidates() -> list[str]:
    return [m.name for m in _TABLE if m.can_be_primary]


def interval_metrics() -> list[str]:
    """Metrics ``score`` reports with a bootstrap interval (``<m>_ci_low``/``<m>_ci_high``): those that can
    be primary or have a noise floor."""
    return [m.name for m in _TABLE if m.can_be_primary or m.has_floor]


def floor_metrics() -> list[str]:
    """Metrics a noise floor is reported for (``has_floor``)."""
    return [m.name for m in _TABLE if m.has_floor]
