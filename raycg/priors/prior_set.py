"""Fitted priors: parameters per term, fit diagnostics, and the versioned JSON file format.

File (``priors.json``)::

    {"format": "raycg-priors", "format_version": 1, "n_beads", "temperature_K", "kbt_kcal_per_mol",
     "bead_types", "bead_labels", "bonds" (dataset CG bonds), "config" (PriorConfig), "dataset",
     "provenance", "energy_forms",
     "terms": {kind: {"atoms": [[i, j, ...], ...], "group": [g, ...], "params": {name: [...]}}},
     "fits":  {kind: [{"label", "members", "params", "method", "rms_kcal", "range", "bins",
                       "n_samples", "n_eff", "out_of_range", "n_fit_bins", "histogram", ...}]}}

kinds and params: each kind's term class (:data:`raycg.priors.terms.TERMS`) gives its arity and
parameter schema: bonds {k [kcal/mol/Å²], x0 [Å]}, angles {k [kcal/mol/rad²], x0 [rad]},
dihedrals {cos [N,order], sin [N,order] kcal/mol}, repulsion {sigma [Å]}. Never pickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raycg import units as U
from raycg.errors import InputError
from raycg.priors.config import PriorConfig
from raycg.priors.terms import term_class
from raycg.utils.io import _json_default, atomic_write_text

FORMAT_NAME = "raycg-priors"
FORMAT_VERSION = 1


@dataclass
class TermTable:
    """Terms of one kind: bead indices [N, arity], parameter-group index [N], params per term."""

    kind: str
    atoms: np.ndarray
    group: np.ndarray
    params: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(len(self.atoms))


@dataclass
class TermFit:
    """Fit of one parameter group (one term, or all terms with the same bead types).

    ``range`` is the histogram range (Å or rad), ``histogram`` its (weighted) counts per bin,
    ``n_samples`` the total weight histogrammed (out-of-range included), ``n_eff`` the effective
    sample size (Σw)²/Σw², ``rms_kcal`` the count-weighted RMS of (data free energy − fit) over
    the fitted bins in kcal/mol.
    """

    kind: str
    label: str
    members: list[list[int]]
    params: dict[str, Any]
    method: str
    range: tuple[float, float]
    bins: int
    n_samples: float
    n_eff: float
    out_of_range: float
    n_fit_bins: int = 0
    rms_kcal: float | None = None
    rms_unweighted_kcal: float | None = None
    max_abs_kcal: float | None = None
    histogram: list[float] | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["range"] = [float(self.range[0]), float(self.range[1])]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TermFit:
        d = dict(d)
        d["range"] = tuple(d["range"])
        return cls(**d)


@dataclass
class PriorSet:
    """A fitted set of prior terms (see the module docstring for units and forms)."""

    n_beads: int
    temperature_K: float
    terms: dict[str, TermTable]
    fits: dict[str, list[TermFit]]
    config: PriorConfig = field(default_factory=PriorConfig)
    bead_types: list[int] = field(default_factory=list)
    bead_labels: list[str] = field(default_factory=list)
    bonds: list[list[int]] = field(default_factory=list)
    dataset: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------
    @property
    def kbt(self) -> float:
        """k_B·T of the fit in kcal/mol."""
        return U.kbt(self.temperature_K)

    def n_terms(self) -> dict[str, int]:
        return {k: len(t) for k, t in self.terms.items()}

    def to_module(self):
        """The prior as a :class:`raycg.priors.energy.PriorEnergy` torch module (float64 buffers)."""
        from raycg.priors.energy import PriorEnergy

        tables = {k: (t.atoms, t.params) for k, t in self.terms.items()}
        return PriorEnergy.from_tables(self.n_beads, tables)

    def energy(self, coords: np.ndarray) -> np.ndarray:
        """Prior energy (kcal/mol, float64 [F]) of coordinates [F,B,3] Å (convenience, numpy)."""
        import torch

        with torch.no_grad():
            return self.to_module()(torch.as_tensor(np.asarray(coords, dtype=np.float64))).numpy()

    # ------------------------------------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        terms = {}
        for kind, tab in self.terms.items():
            terms[kind] = {"atoms": tab.atoms.tolist(), "group": tab.group.tolist(),
                           "params": {k: np.asarray(v, dtype=np.float64).tolist() for k, v in tab.params.items()}}
        return {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "n_beads": self.n_beads, "temperature_K": self.temperature_K,
            "kbt_kcal_per_mol": self.kbt, "units": dict(U.UNITS),
            "energy_forms": {k: term_class(k).energy_form for k in self.terms},
            "bead_types": list(self.bead_types), "bead_labels": list(self.bead_labels),
            "bonds": [list(map(int, b)) for b in self.bonds],
            "config": self.config.model_dump(mode="json"),
            "dataset": self.dataset, "provenance": self.provenance,
            "terms": terms,
            "fits": {k: [f.to_json() for f in v] for k, v in self.fits.items()},
        }

    def to_json(self) -> str:
        """JSON text; long number lists (histograms, parameters, atoms) kept on one line each."""
        d = self.to_json_dict()
        compact: dict[str, str] = {}

        def hide(value: Any) -> str:
            key = f"@@compact{len(compact)}@@"
            compact[key] = json.dumps(value, separators=(",", ":"))
            return key

        for tab in d["terms"].values():
            tab["atoms"] = hide(tab["atoms"])
            tab["group"] = hide(tab["group"])
            tab["params"] = {k: hide(v) for k, v in tab["params"].items()}
        for fits in d["fits"].values():
            for f in fits:
                f["members"] = hide(f["members"])
                if f.get("histogram") is not None:
                    f["histogram"] = hide(f["histogram"])
                f["params"] = {k: hide(v) if isinstance(v, list) else v for k, v in f["params"].items()}
        for key in ("bonds", "bead_types", "bead_labels"):
            d[key] = hide(d[key])
        text = json.dumps(d, indent=2, default=_json_default)
        for key, value in compact.items():
            text = text.replace(f'"{key}"', value)
        return text + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the priors as versioned JSON, atomically."""
        return atomic_write_text(path, self.to_json())

    @classmethod
    def from_json_dict(cls, d: dict[str, Any], where: str = "priors") -> PriorSet:
        if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
            raise InputError(f"not a raycg priors file (format {d.get('format') if isinstance(d, dict) else None!r})",
                             where=where, hint="make one with 'raycg priors fit DATASET --out priors.json'")
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise InputError(f"priors format version {version!r} is not supported (this raycg reads {FORMAT_VERSION})",
                             where=where, hint="re-fit the priors with this raycg version")
        try:
            from raycg.config import validate_config

            config = validate_config(PriorConfig, d.get("config", {}), source=f"{where}: config")
            n_beads = int(d["n_beads"])
            terms = {k: _read_table(k, tab, config, n_beads, where)
                     for k, tab in d["terms"].items()}
            fits = {k: [TermFit.from_json(f) for f in v] for k, v in d.get("fits", {}).items()}
            return cls(n_beads=n_beads, temperature_K=float(d["temperature_K"]), terms=terms, fits=fits,
                       config=config, bead_types=list(d.get("bead_types", [])),
                       bead_labels=list(d.get("bead_labels", [])), bonds=[list(b) for b in d.get("bonds", [])],
                       dataset=dict(d.get("dataset", {})), provenance=dict(d.get("provenance", {})))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"malformed priors file ({type(exc).__name__}: {exc})", where=where,
                             hint="re-fit the priors with 'raycg priors fit'") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> PriorSet:
        """Read a priors JSON file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"priors file not found: {path}", hint="check the path or run 'raycg priors fit'")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"not valid JSON ({exc})", where=str(path), hint="re-fit the priors") from None
        return cls.from_json_dict(d, where=str(path))

    # ------------------------------------------------------------------------------------------
    def summary_lines(self) -> list[str]:
        """Human-readable table of the fitted parameters and fit quality."""
        lines = [f"priors for {self.n_beads} beads at {self.temperature_K:g} K (kT = {self.kbt:.4f} kcal/mol); "
                 f"dataset {self.dataset.get('name', '?')} ({self.dataset.get('n_frames_used', '?')} frames), "
                 f"grouping={self.config.grouping}"]
        for kind, fits in self.fits.items():
            cls = term_class(kind)
            lines.append(f"{kind}: {len(self.terms[kind])} terms, {len(fits)} parameter groups  "
                         f"[{cls.energy_form}]")
            for f in fits:
                shown = cls.summary(f.params)
                rms = "" if f.rms_kcal is None else f"  rms={f.rms_kcal:.3f} kcal/mol"
                oor = f"  out-of-range={100 * f.out_of_range:.2g}%" if f.out_of_range > 0 else ""
                note = f"  [{f.method}{'; ' + f.note if f.note else ''}]" if f.note or f.method not in (
                    "harmonic-lsq", "fourier-lsq", "percentile") else ""
                lines.append(f"  {f.label:<24s} {shown}{rms}  n_eff={f.n_eff:.4g}{oor}{note}")
        return lines



def _read_table(kind: str, tab: dict[str, Any], config: PriorConfig, n_beads: int,
                where: str) -> TermTable:
    """One kind's terms from a priors file, checked against its term class's schema."""
    cls = term_class(kind, where=where)
    atoms = np.asarray(tab["atoms"], dtype=np.int64).reshape(-1, cls.arity)
    n = len(atoms)
    params = {}
    for name in cls.param_names:
        arr = np.asarray(tab["params"][name], dtype=np.float64)
        if arr.shape[:1] != (n,) or not np.all(np.isfinite(arr)):
            raise InputError(f"terms.{kind}.params.{name} has shape {arr.shape} or non-finite "
                             f"values for {n} terms", where=where, hint="re-fit the priors")
        params[name] = arr
    params = cls.check_params(params, n, config)
    if n and (atoms.min() < 0 or atoms.max() >= n_beads):
        raise InputError(f"terms.{kind}.atoms refers to beads outside 0..{n_beads - 1}",
                         where=where, hint="re-fit the priors")
    return TermTable(kind, atoms, np.asarray(tab["group"], dtype=np.int64), params)
