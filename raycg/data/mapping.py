"""All-atom → CG maps: the Cα slice map (default) and custom maps from a user file (YAML/JSON).

A map is two linear operators over ``n_atoms`` atoms: coordinates ``R[b] = Σ_i C[b, i] r[i]`` (rows
of ``C`` sum to 1) and forces ``F[b] = Σ_i D[b, i] f[i]`` (``D`` ∈ {0, 1}). With
``constraints="h-bonds"`` (default) the forces of atoms rigidly constrained to a bead's atoms are
added to it. Bead types of Cα maps are residue types (:data:`AMINO_ACIDS`, 0-19; termini +20/+40);
bead masses (amu) are residue masses (``bead_mass="ca"``: the Cα mass). Why, and the custom map file
format: docs/data.md ("All-atom → CG maps").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from raycg.config import StrictModel, read_yaml, validate_config
from raycg.data.format import BeadInfo, MappingInfo
from raycg.errors import InputError

if TYPE_CHECKING:
    import mdtraj

#: The 20 standard amino acids; a Cα bead's type is its index here.
AMINO_ACIDS: tuple[str, ...] = (
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
)
#: Average residue masses in a chain (amino acid − H2O), amu.
RESIDUE_MASSES: dict[str, float] = {
    "ALA": 71.0788, "ARG": 156.1875, "ASN": 114.1038, "ASP": 115.0886, "CYS": 103.1388,
    "GLN": 128.1307, "GLU": 129.1155, "GLY": 57.0519, "HIS": 137.1411, "ILE": 113.1594,
    "LEU": 113.1594, "LYS": 128.1741, "MET": 131.1926, "PHE": 147.1766, "PRO": 97.1167,
    "SER": 87.0782, "THR": 101.1051, "TRP": 186.2132, "TYR": 163.1760, "VAL": 99.1326,
}
#: Force-field spellings of protonation states and variants → canonical residue name.
RESIDUE_ALIASES: dict[str, str] = {
    "HID": "HIS", "HIE": "HIS", "HIP": "HIS", "HSD": "HIS", "HSE": "HIS", "HSP": "HIS", "HSE+": "HIS",
    "CYX": "CYS", "CYM": "CYS", "ASH": "ASP", "GLH": "GLU", "LYN": "LYS", "ARN": "ARG",
}
ONE_LETTER: dict[str, str] = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU", "G": "GLY",
    "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE", "P": "PRO", "S": "SER",
    "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}
#: Residues the Cα map skips silently (solvent, ions, capping groups).
NON_BEAD_RESIDUES = frozenset({
    "HOH", "WAT", "SOL", "TIP3", "TIP3P", "TIP4P", "SPC", "NA", "CL", "K", "MG", "CA2", "ZN", "NA+", "CL-",
    "SOD", "CLA", "POT", "ACE", "NME", "NH2", "NMA",
})
CA_MASS = 12.011
ConstraintSpec = Literal["h-bonds", "none"]


def canonical_residue(name: str, *, where: str = "") -> str:
    """Canonical 3-letter amino-acid name of ``name``; InputError if it is not an amino acid."""
    up = name.strip().upper()
    canon = RESIDUE_ALIASES.get(up, up)
    if canon not in RESIDUE_MASSES:
        raise InputError(
            f"unknown residue {name!r} in the mapping{(' (' + where + ')') if where else ''}",
            hint=f"the Cα map knows {', '.join(AMINO_ACIDS)} (and protonation variants); "
                 "use a custom map (--map FILE) that gives this bead's type and mass",
        )
    return canon


def type_names_table(termini: bool) -> list[str]:
    """Name of each bead-type index: 20 residue types (+ N-/C-terminal variants with termini)."""
    names = list(AMINO_ACIDS)
    if termini:
        names += [f"N-{a}" for a in AMINO_ACIDS] + [f"C-{a}" for a in AMINO_ACIDS]
    return names


def residue_type(canon: str, position: str = "", termini: bool = False) -> int:
    """Bead type index of a canonical residue; ``position`` is "N", "C" or "" (interior)."""
    t = AMINO_ACIDS.index(canon)
    if termini and position == "N":
        return 20 + t
    if termini and position == "C":
        return 40 + t
    return t


def parse_sequence(sequence: str | list[str]) -> list[str]:
    """Residue names from "YYDPETGTWY" (one-letter) or a list/space/comma list of 3-letter names."""
    if isinstance(sequence, str):
        s = sequence.strip()
        parts = s.replace(",", " ").split()
        if len(parts) == 1 and all(c.upper() in ONE_LETTER for c in s):
            return [ONE_LETTER[c.upper()] for c in s]
        sequence = parts
    return [canonical_residue(r, where=f"sequence position {i + 1}") for i, r in enumerate(sequence)]


def sequential_bonds(chain_ids: list[str]) -> list[tuple[int, int]]:
    """Bonds between consecutive beads of the same chain."""
    return [(i, i + 1) for i in range(len(chain_ids) - 1) if chain_ids[i] == chain_ids[i + 1]]


def beads_from_sequence(sequence: str | list[str], *, termini: bool = False,
                        bead_mass: Literal["residue", "ca"] = "residue",
                        types: np.ndarray | list[int] | None = None) -> tuple[BeadInfo, list[tuple[int, int]]]:
    """Cα beads (one per residue, one chain) and sequential bonds for data that is already CG.

    ``types`` overrides the residue-type table (e.g. torchmd-cg bead embeddings).
    """
    res = parse_sequence(sequence)
    n = len(res)
    pos = ["N" if i == 0 else "C" if i == n - 1 else "" for i in range(n)]
    if types is None:
        tys = [residue_type(r, p, termini) for r, p in zip(res, pos)]
        tnames = type_names_table(termini)
    else:
        tys = [int(t) for t in np.asarray(types).reshape(-1)]
        if len(tys) != n:
            raise InputError(f"{len(tys)} bead types for a sequence of {n} residues",
                             hint="give one embedding per bead")
        if min(tys) < 0:
            raise InputError("bead types (embeddings) must be non-negative integers")
        by_type: dict[int, list[str]] = {}
        for t, r in zip(tys, res):
            by_type.setdefault(t, [])
            if r not in by_type[t]:
                by_type[t].append(r)
        tnames = ["/".join(by_type.get(t, [])) or f"type{t}" for t in range(max(tys) + 1)]
    masses = [RESIDUE_MASSES[r] if bead_mass == "residue" else CA_MASS for r in res]
    beads = BeadInfo(names=["CA"] * n, types=tys, type_names=tnames, masses=masses, residue_names=res,
                     residue_ids=list(range(1, n + 1)), chain_ids=["A"] * n)
    return beads, sequential_bonds(beads.chain_ids)


# ----------------------------------------------------------------------------------------------
# constraints


def constrained_pairs(topology: Any, constraints: ConstraintSpec | np.ndarray | list) -> np.ndarray:
    """Atom index pairs [K, 2] that are rigidly constrained.

    ``"h-bonds"``: every topology bond with exactly one hydrogen (OpenMM ``HBonds``); ``"none"``;
    or explicit pairs (e.g. read from an OpenMM ``System``).
    """
    if isinstance(constraints, str):
        if constraints == "none":
            return np.zeros((0, 2), np.int64)
        if constraints != "h-bonds":
            raise InputError(f"unknown constraints {constraints!r}; use 'h-bonds' or 'none'")
        pairs = []
        for a, b in topology.bonds:
            ha = a.element is not None and a.element.symbol == "H"
            hb = b.element is not None and b.element.symbol == "H"
            if ha != hb:
                pairs.append((a.index, b.index))
        if not pairs and topology.n_bonds == 0 and any(a.element.symbol == "H" for a in topology.atoms if a.element):
            raise InputError("the all-atom topology has hydrogens but no bonds, so H-bond constraints cannot be found",
                             hint="use a topology with bonds (PDB of standard residues, or with CONECT) "
                                  "or --constraints none")
        return np.asarray(pairs, np.int64).reshape(-1, 2)
    return np.asarray(constraints, np.int64).reshape(-1, 2)


def rigid_groups(n_atoms: int, pairs: np.ndarray) -> np.ndarray:
    """Label [n_atoms] of the rigid group (connected component of constrained pairs) of each atom."""
    parent = np.arange(n_atoms)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n_atoms)], np.int64)


# ----------------------------------------------------------------------------------------------
# the map


@dataclass
class CGMap:
    """A linear all-atom → CG map: ``coord_weights`` C [B, N], ``force_weights`` D [B, N]."""

    coord_weights: np.ndarray
    force_weights: np.ndarray
    beads: BeadInfo
    bonds: list[tuple[int, int]]
    info: MappingInfo

    @property
    def n_atoms(self) -> int:
        return int(self.coord_weights.shape[1])

    @property
    def n_beads(self) -> int:
        return int(self.coord_weights.shape[0])

    def map_coords(self, xyz: np.ndarray) -> np.ndarray:
        """[F, N, 3] → [F, B, 3] float32 (same length unit as the input)."""
        return np.matmul(self.coord_weights, np.asarray(xyz, np.float64)).astype(np.float32)

    def map_forces(self, forces: np.ndarray) -> np.ndarray:
        """[F, N, 3] → [F, B, 3] float32 (sum over each bead's force atoms)."""
        return np.matmul(self.force_weights, np.asarray(forces, np.float64)).astype(np.float32)


def _atom_mass(atom: Any) -> float:
    return float(atom.element.mass) if atom.element is not None and atom.element.mass else 0.0


def _bonds_between_beads(topology: Any, bead_atoms: list[list[int]], chain_ids: list[str]) -> list[tuple[int, int]]:
    """Consecutive beads are bonded if their residues are covalently bonded (sequential if no bonds)."""
    if topology.n_bonds == 0:
        return sequential_bonds(chain_ids)
    res_of_atom = np.array([a.residue.index for a in topology.atoms])
    bonded_res = {tuple(sorted((res_of_atom[a.index], res_of_atom[b.index]))) for a, b in topology.bonds}
    out = []
    for i in range(len(bead_atoms) - 1):
        ri, rj = res_of_atom[bead_atoms[i][0]], res_of_atom[bead_atoms[i + 1][0]]
        if chain_ids[i] == chain_ids[i + 1] and (ri == rj or tuple(sorted((ri, rj))) in bonded_res):
            out.append((i, i + 1))
    return out


def _force_atoms(bead_atoms: list[list[int]], groups: np.ndarray) -> tuple[list[list[int]], int]:
    """Each bead's atoms extended by the unclaimed atoms of its rigid groups.

    A rigid group whose atoms belong to several beads (e.g. an N–H split between a backbone and a
    side-chain bead) cannot be given to one bead: its unclaimed atoms go to none, and the number of
    such groups is returned so the map can record it.
    """
    owner = {a: b for b, atoms in enumerate(bead_atoms) for a in atoms}
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(int(g), []).append(i)
    split = {g for g, ms in members.items() if len({owner[m] for m in ms if m in owner}) > 1}
    out = []
    for atoms in bead_atoms:
        fa = set(atoms)
        for a in atoms:
            if int(groups[a]) not in split:
                fa.update(members[int(groups[a])])
        out.append(sorted(fa))
    return out, len(split)


def _assemble(topology: Any, bead_atoms: list[list[int]], centers: list[str], beads: BeadInfo,
              bonds: list[tuple[int, int]], constraints: Any, info: dict[str, Any]) -> CGMap:
    n = topology.n_atoms
    masses = np.array([_atom_mass(a) for a in topology.atoms])
    cw = np.zeros((len(bead_atoms), n))
    for b, (atoms, center) in enumerate(zip(bead_atoms, centers)):
        if center == "first" or len(atoms) == 1:
            cw[b, atoms[0]] = 1.0
        elif center == "com":
            m = masses[atoms]
            if m.sum() <= 0:
                raise InputError(f"bead {b}: selected atoms have no masses (unknown elements)", hint="use center: cog")
            cw[b, atoms] = m / m.sum()
        else:
            cw[b, atoms] = 1.0 / len(atoms)
    pairs = constrained_pairs(topology, constraints)
    groups = rigid_groups(n, pairs)
    force_atoms, n_split = _force_atoms(bead_atoms, groups)
    fw = np.zeros((len(bead_atoms), n))
    for b, atoms in enumerate(force_atoms):
        fw[b, atoms] = 1.0
    cname = constraints if isinstance(constraints, str) else "explicit"
    mi = MappingInfo(
        kind=info.pop("kind"), atoms_per_bead=[list(map(int, a)) for a in bead_atoms],
        force_atoms_per_bead=force_atoms,
        force_aggregation="constraint-aware" if cname != "none" else "bead-atoms",
        constraints=cname, n_atoms=n, split_rigid_groups=n_split, **info,
    )
    return CGMap(coord_weights=cw, force_weights=fw, beads=beads, bonds=bonds, info=mi)


def ca_map(topology: mdtraj.Topology, *, termini: bool = False, constraints: ConstraintSpec | np.ndarray = "h-bonds",
           bead_mass: Literal["residue", "ca"] = "residue") -> CGMap:
    """Cα slice map: one bead per amino-acid residue at its CA atom (``topology``: mdtraj.Topology)."""
    bead_atoms, names, rnames, rids, cids, masses, tys = [], [], [], [], [], [], []
    per_chain: dict[int, list[int]] = {}
    for res in topology.residues:
        ca = [a for a in res.atoms if a.name == "CA"]
        up = res.name.strip().upper()
        if not ca:
            if up in NON_BEAD_RESIDUES or (not res.is_protein and res.n_atoms <= 4):
                continue
            canonical_residue(res.name, where=f"residue {res.name}{res.resSeq}, index {res.index}, no CA atom")
            continue
        canon = canonical_residue(res.name, where=f"residue {res.name}{res.resSeq}, index {res.index}, "
                                                  f"chain {res.chain.index}")
        per_chain.setdefault(res.chain.index, []).append(len(bead_atoms))
        bead_atoms.append([ca[0].index])
        names.append("CA")
        rnames.append(canon)
        rids.append(int(res.resSeq))
        cids.append(chr(ord("A") + res.chain.index % 26))
        masses.append(sum(_atom_mass(a) for a in res.atoms) if bead_mass == "residue" else _atom_mass(ca[0]))
        tys.append(canon)
    if not bead_atoms:
        raise InputError("the topology has no residue with a CA atom", hint="use a custom map (--map FILE)")
    pos = [""] * len(bead_atoms)
    for idx in per_chain.values():
        pos[idx[0]] = "N"
        pos[idx[-1]] = "C" if len(idx) > 1 else pos[idx[-1]]
    types = [residue_type(r, p, termini) for r, p in zip(tys, pos)]
    beads = BeadInfo(names=names, types=types, type_names=type_names_table(termini), masses=masses,
                     residue_names=rnames, residue_ids=rids, chain_ids=cids)
    bonds = _bonds_between_beads(topology, bead_atoms, cids)
    return _assemble(topology, bead_atoms, ["first"] * len(bead_atoms), beads, bonds, constraints,
                     {"kind": "ca-slice", "termini": termini, "bead_mass": bead_mass})


class CustomBead(StrictModel):
    selection: str
    name: str | None = None
    center: Literal["com", "cog", "first"] = "com"
    type: int | None = Field(default=None, ge=0)
    mass: float | None = Field(default=None, gt=0)


class CustomMapSpec(StrictModel):
    """A user map file: one selection (mdtraj syntax) per bead, optional bonds."""

    beads: list[CustomBead] = Field(min_length=1)
    bonds: Literal["sequential"] | list[tuple[int, int]] = "sequential"
    termini: bool = False


def read_custom_map(path: str | os.PathLike) -> CustomMapSpec:
    """Read a YAML or JSON custom map file (errors name the file, line and field)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise InputError(f"map file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
        return validate_config(CustomMapSpec, data, source=str(path))
    data, lines = read_yaml(path)
    return validate_config(CustomMapSpec, data, source=str(path), lines=lines)


def custom_map(topology: mdtraj.Topology, spec: CustomMapSpec | str | os.PathLike,
               *, constraints: ConstraintSpec | np.ndarray = "h-bonds") -> CGMap:
    """A map from a user file: bead b = the atoms of its mdtraj selection."""
    source = None
    if not isinstance(spec, CustomMapSpec):
        source = str(spec)
        spec = read_custom_map(spec)
    where = source or "custom map"
    bead_atoms, names, rnames, rids, cids, masses, types = [], [], [], [], [], [], []
    owner: dict[int, int] = {}
    n_res = {c.index: [r.index for r in c.residues] for c in topology.chains}
    for b, bead in enumerate(spec.beads):
        try:
            sel = topology.select(bead.selection)
        except Exception as exc:  # mdtraj raises several types for bad selections
            raise InputError(f"{where}: beads.{b}.selection {bead.selection!r}: {exc}".splitlines()[0],
                             hint="use mdtraj selection syntax, e.g. 'resSeq 3 and name CA'") from None
        if len(sel) == 0:
            raise InputError(f"{where}: beads.{b}.selection {bead.selection!r} selects no atom",
                             hint="check residue numbers (resSeq is the PDB number, resid is 0-based)")
        for a in sel:
            if int(a) in owner:
                raise InputError(f"{where}: atom {int(a)} is in beads {owner[int(a)]} and {b}",
                                 hint="bead selections must not overlap")
            owner[int(a)] = b
        atoms = [int(a) for a in sel]
        first = topology.atom(atoms[0])
        res = first.residue
        if bead.type is None:
            canon = canonical_residue(res.name, where=f"{where}: beads.{b}, residue {res.name}{res.resSeq}")
            chain_res = n_res[res.chain.index]
            pos = "N" if res.index == chain_res[0] else "C" if res.index == chain_res[-1] else ""
            types.append(residue_type(canon, pos, spec.termini))
            rnames.append(canon)
        else:
            types.append(int(bead.type))
            rnames.append(res.name)
        bead_atoms.append(atoms)
        names.append(bead.name or first.name)
        rids.append(int(res.resSeq))
        cids.append(chr(ord("A") + res.chain.index % 26))
        masses.append(float(bead.mass) if bead.mass else sum(_atom_mass(topology.atom(a)) for a in atoms))
    if any(t is None for t in types):
        raise InputError(f"{where}: bead types missing")
    table = type_names_table(spec.termini)
    tnames = [table[t] if t < len(table) else f"type{t}" for t in range(max(max(types) + 1, len(table)))]
    beads = BeadInfo(names=names, types=types, type_names=tnames, masses=masses, residue_names=rnames,
                     residue_ids=rids, chain_ids=cids)
    if spec.bonds == "sequential":
        bonds = _bonds_between_beads(topology, bead_atoms, cids)
    else:
        bonds = [(int(a), int(b)) for a, b in spec.bonds]
        for a, b in bonds:
            if not (0 <= a < len(bead_atoms) and 0 <= b < len(bead_atoms)) or a == b:
                raise InputError(f"{where}: bond ({a}, {b}) names a bead outside 0..{len(bead_atoms) - 1}")
    return _assemble(topology, bead_atoms, [bd.center for bd in spec.beads], beads, bonds, constraints,
                     {"kind": "custom", "source": source, "spec": spec.model_dump(mode="json")})
