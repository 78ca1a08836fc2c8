"""OpenMM systems for all-atom reference MD (amber14 + GBn2 implicit or TIP3P-FB/PME explicit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raycg.allatom.config import AllAtomConfig
from raycg.errors import InputError


@dataclass
class BuiltSystem:
    topology: Any            # openmm.app.Topology (with solvent when explicit)
    system: Any              # openmm.System
    positions: Any           # openmm Quantity positions
    solute_atoms: np.ndarray  # indices of the protein atoms (what is saved)


def _require_openmm():
    try:
        import openmm  # noqa: F401
        import openmm.app  # noqa: F401
    except ImportError:
        raise InputError("OpenMM is not installed", hint="pip install 'raycg[openmm]'") from None


def available_platforms() -> list[str]:
    import openmm as mm

    return [mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]


def choose_platform(name: str, cpu_threads: int = 0):
    """Return (platform, properties). ``auto`` prefers CUDA, then OpenCL, then CPU."""
    import openmm as mm

    names = available_platforms()
    if name == "auto":
        name = next(n for n in ("CUDA", "OpenCL", "CPU", "Reference") if n in names)
    if name not in names:
        raise InputError(f"OpenMM platform {name!r} is not available on this machine",
                         where="platform", hint=f"use one of {names} or 'auto'")
    props: dict[str, str] = {}
    if name == "CPU" and cpu_threads:
        props["Threads"] = str(cpu_threads)
    if name in ("CUDA", "OpenCL"):
        props["Precision"] = "mixed"
    return mm.Platform.getPlatformByName(name), props


def build_system(pdb_path: str | Path, cfg: AllAtomConfig) -> BuiltSystem:
    """Build the OpenMM system for a protein PDB (hydrogens must be present or addable)."""
    _require_openmm()
    import openmm.app as app
    import openmm.unit as u

    pdb_path = Path(pdb_path)
    if not pdb_path.is_file():
        raise InputError(f"PDB file not found: {pdb_path}")
    try:
        pdb = app.PDBFile(str(pdb_path))
    except Exception as exc:  # noqa: BLE001 - OpenMM raises bare Exceptions
        raise InputError(f"cannot read PDB: {exc}", where=str(pdb_path)) from None
    water = "amber14/tip3pfb.xml" if cfg.solvent == "explicit-tip3pfb" else "implicit/gbn2.xml"
    try:
        ff = app.ForceField(cfg.forcefield, water)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot load force field {cfg.forcefield!r}: {exc}", where="forcefield") from None
    modeller = app.Modeller(pdb.topology, pdb.positions)
    n_solute = modeller.topology.getNumAtoms()
    hmass = cfg.hydrogen_mass_amu * u.amu if cfg.hmr else None
    try:
        if cfg.solvent == "explicit-tip3pfb":
            modeller.addSolvent(ff, model="tip3p", padding=cfg.explicit_padding_nm * u.nanometer,
                                ionicStrength=cfg.ionic_strength_molar * u.molar, neutralize=True)
            system = ff.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=1.0 * u.nanometer,
                                     constraints=app.HBonds, rigidWater=True, hydrogenMass=hmass)
        else:
            system = ff.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff,
                                     constraints=app.HBonds, hydrogenMass=hmass)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"the force field cannot template this structure: {first}", where=str(pdb_path),
                         hint="add missing atoms/hydrogens first (e.g. pdbfixer), then retry") from None
    return BuiltSystem(topology=modeller.topology, system=system, positions=modeller.positions,
                       solute_atoms=np.arange(n_solute, dtype=np.int64))


def constrained_hydrogen_partners(system: Any, n_atoms: int) -> dict[int, list[int]]:
    """For each heavy atom, the hydrogens rigidly constrained to it in ``system`` (index map)."""
    partners: dict[int, list[int]] = {}
    masses = [system.getParticleMass(i)._value for i in range(n_atoms)]
    for k in range(system.getNumConstraints()):
        i, j, _ = system.getConstraintParameters(k)
        if i >= n_atoms or j >= n_atoms:
            continue
        heavy, light = (i, j) if masses[i] >= masses[j] else (j, i)
        partners.setdefault(heavy, []).append(light)
    return partners
