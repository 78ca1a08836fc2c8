"""Configuration of the prior fit (:class:`PriorConfig`)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from raycg.config import StrictModel

#: the built-in term kinds, each switched by the config field of its name (fit in this order)
BUILTIN_KINDS: tuple[str, ...] = ("bonds", "angles", "dihedrals", "repulsion")


class PriorConfig(StrictModel):
    """How the classical prior terms are chosen and fitted.

    Energy forms (kcal/mol; lengths Å, angles rad):
    bonds ``½ k (r − r0)²``; angles ``½ k (θ − θ0)²``;
    dihedrals ``Σ_n [c_n cos(nφ) + s_n sin(nφ)]``, n = 1..dihedral_order;
    repulsion ``(σ / r)⁶`` over pairs at least ``repulsion_min_bond_separation`` bonds apart.
    """

    bonds: bool = True
    angles: bool = True
    dihedrals: bool = True
    repulsion: bool = True
    #: Further registered term kinds to fit (:data:`raycg.priors.terms.TERMS`), after the four
    #: above, e.g. ["cos_angles"] or a custom term's kind.
    extra_terms: list[str] = Field(default_factory=list)
    #: Number of Fourier terms n = 1..order of the dihedral series.
    dihedral_order: int = Field(3, ge=1, le=6)
    #: Tikhonov penalty on the Fourier coefficients, relative to the summed bin weights. A dihedral
    #: sampled over a narrow window leaves the series unconstrained elsewhere: unregularised, the
    #: embedded reference's fits reached coefficients of ±100 kcal/mol whose cancellation outside the
    #: data made prior-only simulations blow up. 0 disables it.
    dihedral_ridge: float = Field(1e-3, ge=0.0)
    #: Repulsion acts on bead pairs whose shortest bond path has at least this many bonds
    #: (disconnected pairs included). 3 excludes 1-2 and 1-3 pairs, as mlcg does.
    repulsion_min_bond_separation: int = Field(3, ge=2)
    #: σ of a repulsion group = this percentile (in %) of its non-bonded distances, so that
    #: U(σ) = 1 kcal/mol at a distance the data reaches only this rarely.
    repulsion_percentile: float = Field(1.0, gt=0.0, lt=50.0)
    #: Bonds, angles, dihedrals: "term" fits one parameter set per individual term (good for one
    #: protein); "bead_types" one per unique bead-type tuple (mlcg style; transferable).
    grouping: Literal["term", "bead_types"] = "term"
    #: Repulsion σ: "all" (default) pools every non-bonded pair into one excluded-volume σ;
    #: "bead_types" one σ per bead-type pair (mlcg); "term" one σ per pair. Per-pair σ from data
    #: that rarely leave the native state encodes the native contact map into the prior (a pair
    #: that is always 10 Å apart gets σ ≈ 10 Å and is then forbidden to approach in misfolded
    #: states), so the pooled σ is the safe default.
    repulsion_grouping: Literal["all", "bead_types", "term"] = "all"
    #: Histogram bins for bonds, angles and dihedrals; "auto": frames_used / 25 clipped to 24..200
    #: (200 for any dataset of ≥ 5,000 frames; coarser for tiny test datasets so bins stay populated).
    bins: int | Literal["auto"] = "auto"
    #: Histogram bins for repulsion distances (range 0..max distance), used for the percentile.
    repulsion_bins: int = Field(2000, ge=10, le=1_000_000)
    #: Bins with fewer (effective) samples than this are left out of the fit.
    min_bin_count: float = Field(5.0, gt=0)
    #: Fit only bins whose free energy is within this many k_BT of the minimum (None: all bins).
    fit_max_kT: float | None = Field(None, gt=0)
    #: When a group has too few populated bins for its fit (tiny datasets, a very narrow
    #: distribution): harmonic terms use Gaussian moments of the Jacobian-corrected density,
    #: dihedrals a lower Fourier order (or zero); recorded in the fit's method/note and warned.
    #: False: raise InputError instead.
    sparse_fallback: bool = True
    #: The fit needs at least this many frames.
    min_frames: int = Field(50, ge=2)
    #: Divide distance histograms by r² and angle histograms by sin θ (keep True; False only to
    #: reproduce libraries that omit the correction).
    jacobian: bool = True
    #: Fraction of the observed span added below and above it to form the histogram range.
    range_padding: float = Field(0.25, ge=0.0, le=5.0)
    #: Frames (evenly spaced) used to find the histogram ranges before the full pass.
    range_sample_frames: int = Field(100_000, ge=10)
    #: Fixed histogram ranges per kind, e.g. {"bonds": [3.0, 4.6]} (Å or rad); overrides the
    #: data-driven range (dihedrals always span −π..π).
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    #: Frames processed at a time (memory bound: ~ chunk_frames × (beads×24 + terms×24) bytes).
    chunk_frames: int = Field(50_000, ge=1)
    #: Use at most this many frames, evenly spaced over the dataset (None: all).
    max_frames: int | None = Field(None, ge=2)
    #: Fit at this temperature in K instead of the dataset's (None: dataset temperature).
    temperature_K: float | None = Field(None, gt=0)
    #: Store the fit histograms in the JSON (needed to re-plot with ``raycg priors show --plot``).
    store_histograms: bool = True

    def term_kinds(self) -> list[str]:
        """The term kinds this fit includes: the switched-on built-ins, then ``extra_terms``."""
        return [k for k in BUILTIN_KINDS if getattr(self, k)] + list(self.extra_terms)

    def switch_hint(self, name: str) -> str:
        """How to leave the term kind ``name`` out of the fit (for messages)."""
        builtin = name in BUILTIN_KINDS
        return f"priors.{name}: false" if builtin else f"drop {name!r} from priors.extra_terms"

    def resolved_bins(self, n_frames: int) -> int:
        """Number of histogram bins used for ``n_frames`` frames."""
        if self.bins == "auto":
            return int(np.clip(n_frames // 25, 24, 200))
        return int(self.bins)

    @model_validator(mode="after")
    def _check_ranges(self) -> PriorConfig:
        if self.bins != "auto" and not 10 <= self.bins <= 100_000:
            raise ValueError(f"bins must be 'auto' or an integer in 10..100000, got {self.bins}")
        # kind names are checked against the term registry when fitting (it needs torch)
        for name in self.extra_terms:
            if name in BUILTIN_KINDS or self.extra_terms.count(name) > 1:
                raise ValueError(f"extra_terms: {name!r} is built in (switch it with "
                                 f"priors.{name}) or listed twice")
        for kind, (lo, hi) in self.ranges.items():
            if not hi > lo:
                raise ValueError(f"ranges.{kind}: upper bound {hi} must exceed lower bound {lo}")
        return self
