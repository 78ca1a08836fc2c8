"""``raycg export``: a model directory as OpenMM files, and the check that they equal raycg.

Layout of an export directory (written atomically)::

    DIR/
      topology.pdb      CG topology: beads named as in the dataset, residues, chains, CONECT bonds
                        (Å; the dataset's first frame); mdtraj and OpenMM's PDBFile read it
      system.xml        openmm.System: bead masses (amu) + the raycg energy (prior + network) as an
                        openmm.PythonForce (kJ/mol, kJ/mol/nm); XmlSerializer.deserialize loads it
                        where raycg is installed
      model_openmm.pt   TorchScript forward(positions [B, 3] nm) -> energy kJ/mol, for OpenMM-Torch
      export.json       what was exported: beads (names, types, masses), units, the check's errors
      README.md         how to load each file

The check (:func:`check_export`) loads the written files back and compares energies and forces
with raycg's own pass on dataset frames.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import raycg
from raycg import units as U
from raycg.errors import InputError
from raycg.export.potential import (
    KJ_NM_PER_KCAL_A,
    KJ_PER_KCAL,
    read_system_xml,
    require_openmm,
    to_openmm,
)
from raycg.export.torchscript import load_torchscript, require_openmmtorch, save_torchscript
from raycg.utils.io import atomic_directory, to_json

EXPORT_FORMAT = "raycg-openmm-export"
EXPORT_VERSION = 1
PLATFORMS = ("Reference", "CPU")

README = """# raycg model exported for OpenMM

Units: OpenMM's. Positions nm, energy kJ/mol, forces kJ/mol/nm, masses amu, time ps, K
(raycg's Å and kcal/mol converted: 1 nm = 10 Å, 1 kcal = 4.184 kJ). {n_beads} beads, no periodic box.
Model: {model}. Dataset: {dataset}.

## system.xml (openmm.PythonForce; needs raycg installed)

```python
import openmm
from openmm import app, unit
pdb = app.PDBFile("topology.pdb")
system = openmm.XmlSerializer.deserialize(open("system.xml").read())
integrator = openmm.LangevinMiddleIntegrator({temperature:g} * unit.kelvin, 1 / unit.picosecond,
                                             0.002 * unit.picoseconds)
simulation = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("CPU"))
simulation.context.setPositions(pdb.positions)
simulation.step(1000)
```

The PythonForce's function is a pickle (the model's weights and priors as data): load only a
system.xml you trust. `raycg sim run MODEL --engine openmm` runs this system for raycg's replicas.

## model_openmm.pt (TorchScript, for OpenMM-Torch's TorchForce)

```python
from openmmtorch import TorchForce
system = openmm.System()
for mass in {masses_hint}:
    system.addParticle(mass)
system.addForce(TorchForce("model_openmm.pt"))
```

`forward(positions)`: positions [{n_beads}, 3] in nm (float32 or float64) -> energy in kJ/mol;
forces by autograd. The priors are included. In plain torch:
`torch.jit.load("model_openmm.pt")(positions_nm)`.

## topology.pdb

Beads named as in the dataset, one residue per residue id, CONECT records for the CG bonds
(coordinates of the dataset's first frame, Å). Bead types and masses: export.json.
"""


@dataclass
class ErrorStats:
    """Largest differences from raycg over the checked frames (kcal/mol, kcal/mol/Å).

    ``*_rel``: the largest absolute difference over the largest absolute raycg value.
    """

    energy_max_abs: float
    energy_max_rel: float
    force_max_abs: float
    force_max_rel: float

    @classmethod
    def of(cls, e: np.ndarray, f: np.ndarray, e_ref: np.ndarray, f_ref: np.ndarray) -> ErrorStats:
        de = float(np.max(np.abs(e - e_ref))) if e.size else 0.0
        df = float(np.max(np.abs(f - f_ref))) if f.size else 0.0
        return cls(
            de,
            de / max(float(np.max(np.abs(e_ref))), 1e-300),
            df,
            df / max(float(np.max(np.abs(f_ref))), 1e-300),
        )


@dataclass
class ExportCheck:
    """The check of an export: per route (``openmm-Reference``, ``openmm-CPU``, ``torchscript``) the
    errors against raycg in float32, and ``float32_roundoff``: raycg float32 against raycg float64
    (the scale a float32 computation can reach)."""

    n_frames: int
    routes: dict[str, ErrorStats]
    float32_roundoff: ErrorStats
    seconds: float
    notes: list[str] = field(default_factory=list)

    def worst(self) -> tuple[str, ErrorStats]:
        return max(self.routes.items(), key=lambda kv: kv[1].force_max_rel)

    def lines(self) -> list[str]:
        out = [f"checked {self.n_frames} frames against raycg (float32) in {self.seconds:.1f} s"]
        rows = {**self.routes, "raycg float32 vs float64": self.float32_roundoff}
        for name, s in rows.items():
            out.append(
                f"  {name:<26s} energy max abs {s.energy_max_abs:.3g} kcal/mol (rel {s.energy_max_rel:.2g}), "
                f"force max abs {s.force_max_abs:.3g} kcal/mol/A (rel {s.force_max_rel:.2g})"
            )
        name, s = self.worst()
        out.append(
            f"largest error: {name}: force {s.force_max_abs:.3g} kcal/mol/A (rel {s.force_max_rel:.2g}), "
            f"energy {s.energy_max_abs:.3g} kcal/mol (rel {s.energy_max_rel:.2g})"
        )
        out.extend(self.notes)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "n_frames": self.n_frames,
            "routes": {k: asdict(v) for k, v in self.routes.items()},
            "float32_roundoff": asdict(self.float32_roundoff),
            "seconds": self.seconds,
            "units": {"energy": "kcal/mol", "force": "kcal/mol/angstrom"},
            "notes": self.notes,
        }


def _dataset(dataset):
    if isinstance(dataset, (str, os.PathLike)):
        from raycg.data.validate import require_valid

        return require_valid(dataset, "cheap", command="export")
    return dataset


def _check_match(model, ds) -> None:
    if model.n_beads != int(ds.coords.shape[1]):
        raise InputError(
            f"the model has {model.n_beads} beads but the dataset's topology has "
            f"{int(ds.coords.shape[1])}",
            where="export",
            hint="pass the dataset the model was trained on",
        )


def export_model(
    model_dir: str | os.PathLike,
    dataset,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    check_frames: int = 0,
    seed: int = 0,
    torchforce: bool = False,
) -> tuple[Path, ExportCheck | None]:
    """Write the export directory ``out`` (see the module docstring) for the model in ``model_dir``
    with the beads, masses and bonds of ``dataset`` (a CGDataset or its path). With
    ``check_frames > 0`` the written files are checked on that many dataset frames
    (:func:`check_export`; ``torchforce``: OpenMM-Torch's TorchForce too) and the errors are
    recorded in ``export.json``. Returns (out, check).
    """
    from raycg.data.format import write_topology_pdb
    from raycg.model import load_model, read_model_meta

    openmm = require_openmm()
    if torchforce:
        require_openmmtorch()
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists", hint="choose another --out or pass --overwrite")
    meta = read_model_meta(model_dir)
    model = load_model(model_dir)
    ds = _dataset(dataset)
    _check_match(model, ds)
    trained_on = (meta.get("extra") or {}).get("dataset_hash")
    notes = []
    if trained_on and trained_on != ds.content_hash:
        notes.append(
            f"note: the model was trained on dataset {trained_on[:19]}, not this one "
            f"({ds.content_hash[:19]}); beads and masses are this dataset's"
        )
    first = np.asarray(ds.coords[0], dtype=np.float64)
    system = to_openmm(model, ds.masses)
    beads = ds.meta.beads
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "raycg_version": raycg.__version__,
        "openmm_version": openmm.__version__,
        "torch_version": torch.__version__,
        "model": str(Path(model_dir).resolve()),
        "dataset": ds.meta.name,
        "dataset_hash": ds.content_hash,
        "n_beads": model.n_beads,
        "beads": {
            "names": beads.names,
            "types": [int(t) for t in model.bead_types],
            "type_names": beads.type_names,
            "masses": [float(m) for m in ds.masses],
            "residue_names": beads.residue_names,
            "residue_ids": beads.residue_ids,
        },
        "bonds": ds.bonds.tolist(),
        "temperature_K": ds.temperature,
        "units": {
            "system.xml": "nm, kJ/mol, kJ/mol/nm, amu",
            "model_openmm.pt": "positions nm -> kJ/mol",
            "topology.pdb": "angstrom",
        },
        "files": ["topology.pdb", "system.xml", "model_openmm.pt", "export.json", "README.md"],
        "check": None,
        "notes": notes,
    }
    try:
        with atomic_directory(out, overwrite=overwrite) as tmp:
            write_topology_pdb(tmp / "topology.pdb", beads, ds.bonds, first)
            system_xml = openmm.XmlSerializer.serialize(system).encode("utf-8")
            (tmp / "system.xml").write_bytes(system_xml)
            manifest["system_sha256"] = hashlib.sha256(system_xml).hexdigest()
            save_torchscript(model, tmp / "model_openmm.pt", first)
            masses = ", ".join(f"{m:g}" for m in ds.masses[:3]) + (
                ", ..." if model.n_beads > 3 else ""
            )
            (tmp / "README.md").write_text(
                README.format(
                    n_beads=model.n_beads,
                    model=Path(model_dir).name,
                    dataset=ds.meta.name,
                    temperature=ds.temperature,
                    masses_hint=f"[{masses}]  # export.json: beads.masses",
                )
            )
            check = None
            if check_frames > 0:
                check = check_export(
                    tmp,
                    ds,
                    system_sha256=manifest["system_sha256"],
                    model_dir=model_dir,
                    n_frames=check_frames,
                    seed=seed,
                    torchforce=torchforce,
                )
                check.notes[:0] = notes
                manifest["check"] = check.to_json()
            (tmp / "export.json").write_text(to_json(manifest) + "\n")
    except FileExistsError as exc:
        raise InputError(str(exc)) from None
    return out, check


def _raycg(model, pos: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """raycg's energies [F] and forces [F, B, 3] (exact filters), float64 arrays, in blocks of frames."""
    from raycg.model import blocked_energy_and_forces

    e, f = blocked_energy_and_forces(model.energy_and_forces, pos, block=256)
    return e.numpy().astype(np.float64), f.numpy().astype(np.float64)


def _openmm_energies(openmm, system, platform: str, x_A: np.ndarray, like: np.ndarray):
    """Energies [F] (kcal/mol) and forces [F, B, 3] (kcal/mol/Å) of ``system`` at frames x_A (Å)."""
    integrator = openmm.VerletIntegrator(0.001)
    ctx = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    e = np.empty(len(x_A))
    f = np.empty_like(like)
    for k in range(len(x_A)):
        ctx.setPositions(x_A[k].astype(np.float64) * U.ANGSTROM_TO_NM)
        st = ctx.getState(getEnergy=True, getForces=True)
        e[k] = st.getPotentialEnergy()._value / KJ_PER_KCAL
        f[k] = st.getForces(asNumpy=True)._value / KJ_NM_PER_KCAL_A
    return e, f


def check_frames_of(ds, n_frames: int, seed: int = 0) -> np.ndarray:
    """``n_frames`` distinct dataset frame indices drawn with ``seed`` (all frames if fewer), sorted."""
    n = int(ds.coords.shape[0])
    if n_frames >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=n_frames, replace=False))


def check_export(
    export_dir: str | os.PathLike,
    dataset,
    *,
    system_sha256: str,
    model_dir: str | os.PathLike | None = None,
    n_frames: int = 1000,
    seed: int = 0,
    platforms=PLATFORMS,
    torchforce: bool = False,
) -> ExportCheck:
    """Load ``system.xml`` (:func:`~raycg.export.potential.read_system_xml`, one Context per platform) and
    ``model_openmm.pt`` from ``export_dir`` and compare their energies and forces, converted to
    kcal/mol and kcal/mol/Å, with raycg's (the model of ``model_dir``, default the one recorded in
    export.json; float32, exact filters) on ``n_frames`` frames of ``dataset``. ``system_sha256``: the
    digest of the system.xml raycg wrote (export.json ``system_sha256`` of an export you made yourself);
    any other file is refused before its pickle is read."""
    import json

    from raycg.model import load_model

    openmm = require_openmm()
    t0 = time.perf_counter()
    export_dir = Path(export_dir)
    if model_dir is None:
        model_dir = json.loads((export_dir / "export.json").read_text())["model"]
    ds = _dataset(dataset)
    model = load_model(model_dir)
    _check_match(model, ds)
    idx = check_frames_of(ds, n_frames, seed)
    x = np.asarray(ds.coords[idx], dtype=np.float32)
    e64, f64 = _raycg(model.to(torch.float64), torch.as_tensor(x, dtype=torch.float64))
    e_ref, f_ref = _raycg(model.to(torch.float32), torch.as_tensor(x))
    routes: dict[str, ErrorStats] = {}
    system = read_system_xml(export_dir / "system.xml", sha256=system_sha256)
    available = {
        openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())
    }
    notes = []
    runs = [(f"openmm-{name}", system, name) for name in platforms]
    if torchforce:
        torch_system = openmm.System()
        for mass in ds.masses:
            torch_system.addParticle(float(mass))
        torch_system.addForce(require_openmmtorch().TorchForce(str(export_dir / "model_openmm.pt")))
        runs.append(("openmm-TorchForce-Reference", torch_system, "Reference"))
    for route, sys_, name in runs:
        if name not in available:
            notes.append(f"note: OpenMM platform {name} is not available here; not checked")
            continue
        e, f = _openmm_energies(openmm, sys_, name, x, f_ref)
        routes[route] = ErrorStats.of(e, f, e_ref, f_ref)
    ts = load_torchscript(export_dir / "model_openmm.pt")
    e = np.empty(len(idx))
    f = np.empty_like(f_ref)
    for k in range(len(idx)):
        p = torch.as_tensor(x[k] * U.ANGSTROM_TO_NM, dtype=torch.float32).requires_grad_(True)
        energy = ts(p)
        (g,) = torch.autograd.grad(energy, p)
        e[k] = float(energy.detach()) / KJ_PER_KCAL
        f[k] = -g.double().numpy() / KJ_NM_PER_KCAL_A
    routes["torchscript"] = ErrorStats.of(e, f, e_ref, f_ref)
    return ExportCheck(
        n_frames=len(idx),
        routes=routes,
        float32_roundoff=ErrorStats.of(e_ref, f_ref, e64, f64),
        seconds=time.perf_counter() - t0,
        notes=notes,
    )


__all__ = [
    "EXPORT_FORMAT",
    "ErrorStats",
    "ExportCheck",
    "check_export",
    "check_frames_of",
    "export_model",
]
