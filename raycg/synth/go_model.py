"""A two-resolution structure-based (Gō-type) model of CLN025 (chignolin variant YYDPETGTWY).

19 beads: one Cα bead per residue (0..9), then one side-chain bead per non-glycine residue (10..18).
Terms (classes of :mod:`raycg.priors.terms`) at the native values of the all-atom structure: bonds,
angles (harmonic in cos θ), Cα dihedrals, side-chain chirality, native-contact 12-10 wells and (σ/r)¹²
repulsion; with ``misfolded_register`` a second, register-shifted hairpin state (dual-basin model).
Units: Å, kcal/mol, amu. Every term's form: docs/data.md ("The Gō model").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raycg.errors import InputError
from raycg.priors.energy import TermSum
from raycg.priors.geometry import dihedrals, from_numpy, term_index
from raycg.priors.terms import Chirality, ContactPairs, CosineAngle, GoDihedral, HarmonicBond
from raycg.priors.topology import build_topology
from raycg.units import kbt

SEQUENCE = ("TYR", "TYR", "ASP", "PRO", "GLU", "THR", "GLY", "THR", "TRP", "TYR")
#: Atom names that belong to the Cα (backbone) bead; everything else is side chain (Pro CD included).
BACKBONE_ATOMS = frozenset({"N", "H", "H1", "H2", "H3", "HN", "CA", "HA", "HA2", "HA3", "C", "O", "OXT", "HXT"})
PDB_RESOURCE = "cln025_allatom.pdb"


def native_pdb_path() -> Path:
    """Path of the packaged all-atom CLN025 structure (``raycg/resources/cln025_allatom.pdb``)."""
    ref = resources.files("raycg").joinpath("resources", PDB_RESOURCE)
    path = Path(str(ref))
    if not path.is_file():
        raise InputError(f"packaged structure {path} is missing", hint="reinstall raycg")
    return path


@dataclass(frozen=True)
class GoParameters:
    """Force-field constants of the Gō model (kcal/mol, Å, rad)."""

    epsilon: float = 0.50              # native-contact well depth, kcal/mol
    contact_cutoff_A: float = 7.0      # native pairs under this distance are contacts
    min_seq_sep: int = 3               # contacts need |i - j| >= this (residues)
    k_bond: float = 100.0              # kcal/mol/Å²
    k_angle: float = 20.0              # kcal/mol/rad² (near the native angle)
    k_dihedral_1: float = 0.6          # Cα dihedral, kcal/mol
    k_dihedral_3: float = 0.3          # Cα dihedral, third harmonic, kcal/mol
    k_chirality: float = 20.0          # side-chain chirality (normalised triple product), kcal/mol
    epsilon_repulsion: float = 0.5     # kcal/mol
    repulsion_sigma_A: float = 4.0     # Å
    # misfolded state: a register-shifted hairpin (Cα(i) paired with Cα(misfolded_register - i)); its
    # contacts that are not native contacts get wells of depth epsilon_misfolded. None: no misfolded state.
    misfolded_register: int | None = None
    epsilon_misfolded: float = 0.0
    #: with a misfolded state each Cα dihedral term is the smooth minimum of its native and misfolded
    #: forms, -w ln(exp(-V_native/w) + exp(-V_misfolded/w)), so that neither state is strained by them
    dihedral_mixing_kcal: float = 0.3

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GoSystem:
    """The bead system built from an all-atom structure (numpy arrays, Å and amu)."""

    native: np.ndarray                 # [B, 3] native bead positions, Å
    masses: np.ndarray                 # [B] amu
    bead_names: list[str]              # "CA" or "SC"
    bead_residues: list[int]           # 0-based residue index of each bead
    residue_names: list[str]           # per residue
    ca_index: np.ndarray               # [n_res] bead index of each Cα
    bonds: np.ndarray                  # [Nb, 2]
    angles: np.ndarray                 # [Na, 3]
    dihedrals: np.ndarray              # [Nd, 4]
    dihedral_k1: np.ndarray            # [Nd]
    dihedral_k3: np.ndarray            # [Nd]
    chiralities: np.ndarray            # [Nc, 4] (a, b, c, s): Cα neighbour, own Cα, Cα neighbour, side chain
    pairs: np.ndarray                  # [Np, 2] non-bonded pairs (contacts and repulsive)
    pair_is_contact: np.ndarray        # [Np] bool: native contact (well of depth epsilon)
    pair_sigma: np.ndarray             # [Np] Å: well minimum (contacts) or repulsion radius
    params: GoParameters = field(default_factory=GoParameters)
    #: misfolded state (None without one): its bead positions, the pairs that get a misfolded well
    #: (contacts of the misfolded structure that are not native contacts) and its contact list
    misfolded: np.ndarray | None = None
    pair_is_misfolded_contact: np.ndarray | None = None   # [Np] bool
    misfolded_contacts: np.ndarray | None = None          # [Nm, 2] bead pairs in contact when misfolded
    misfolded_sigma: np.ndarray | None = None             # [Nm] their distances in the misfolded structure

    @property
    def native_contacts(self) -> np.ndarray:
        """[Nc, 2] bead pairs in contact in the native structure."""
        return self.pairs[self.pair_is_contact]

    @property
    def n_beads(self) -> int:
        return int(self.native.shape[0])

    @property
    def n_contacts(self) -> int:
        return int(self.pair_is_contact.sum())


# Reference values of one structure x [B, 3], in float64 numpy as the packaged embedded reference
# was made: torch's vectorised sqrt rounds some values differently, and these values seed the
# misfolded structure's minimisation and the simulation, hence the dataset's bytes. The energy
# terms themselves are raycg.priors.terms classes.
def _bond_geometry(x: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[bonds[:, 1]] - x[bonds[:, 0]], axis=-1)


def _angle_cos(x: np.ndarray, angles: np.ndarray) -> np.ndarray:
    u = x[angles[:, 0]] - x[angles[:, 1]]
    v = x[angles[:, 2]] - x[angles[:, 1]]
    return np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))


def _chirality_np(x: np.ndarray, ch: np.ndarray) -> np.ndarray:
    u = x[ch[:, 0]] - x[ch[:, 1]]
    v = x[ch[:, 2]] - x[ch[:, 1]]
    w = x[ch[:, 3]] - x[ch[:, 1]]
    n = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) * np.linalg.norm(w, axis=-1)
    return np.sum(u * np.cross(v, w), -1) / n


def _dihedral_angles(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Dihedral angles [Nd] (rad) of one structure x [B, 3]."""
    with torch.no_grad():
        return dihedrals(from_numpy(x[None].astype(np.float64)), term_index(d, 4))[:, 0].numpy()


def build_go_system(pdb: str | Path | None = None, params: GoParameters | None = None) -> GoSystem:
    """Build the 19-bead CLN025 Gō system from an all-atom PDB (default: the packaged one); with
    ``params.misfolded_register`` set, add the misfolded state (:func:`misfolded_structure`)."""
    params = params or GoParameters()
    native, masses, names, bead_res, res_names = _read_beads(pdb)
    n_res = len(res_names)
    sc_of = {r: k for k, r in enumerate(bead_res) if k >= n_res}
    bonds = [(i, i + 1) for i in range(n_res - 1)] + [(r, s) for r, s in sc_of.items()]
    angles = [(i, i + 1, i + 2) for i in range(n_res - 2)]
    for r, s in sc_of.items():
        if r > 0:
            angles.append((s, r, r - 1))
        if r < n_res - 1:
            angles.append((s, r, r + 1))
    dihedrals = [(i, i + 1, i + 2, i + 3) for i in range(n_res - 3)]
    # chirality of each side chain: (a, b, c, s) with b its Cα and a, c two Cα neighbours
    chiralities = []
    for r, s in sc_of.items():
        a, c = (r - 1, r + 1) if 0 < r < n_res - 1 else ((1, 2) if r == 0 else (r - 1, r - 2))
        chiralities.append((a, r, c, s))
    pairs = build_topology(np.array(bonds), len(native), 3).pairs     # not 1-2 or 1-3 neighbours
    system = GoSystem(
        native=native, masses=masses, bead_names=names, bead_residues=bead_res, residue_names=res_names,
        ca_index=np.arange(n_res), bonds=np.array(bonds, dtype=np.int64), angles=np.array(angles, dtype=np.int64),
        dihedrals=np.array(dihedrals, dtype=np.int64), dihedral_k1=np.full(len(dihedrals), params.k_dihedral_1),
        dihedral_k3=np.full(len(dihedrals), params.k_dihedral_3),
        chiralities=np.array(chiralities, dtype=np.int64).reshape(-1, 4), pairs=pairs,
        pair_is_contact=_in_contact(native, pairs, bead_res, params), pair_sigma=np.zeros(len(pairs)), params=params,
    )
    d_nat = _pair_distances(native, pairs)
    system.pair_sigma = np.where(system.pair_is_contact, d_nat, np.minimum(params.repulsion_sigma_A, 0.9 * d_nat))
    if params.misfolded_register is not None:
        key = (str(pdb), params.misfolded_register, params.k_bond, params.k_angle, params.k_chirality,
               params.epsilon_repulsion, params.repulsion_sigma_A, params.contact_cutoff_A, params.min_seq_sep)
        if key not in _MISFOLDED_CACHE:
            _MISFOLDED_CACHE[key] = misfolded_structure(system, params.misfolded_register)
        _add_misfolded_state(system, _MISFOLDED_CACHE[key].copy())
    return system


#: misfolded structures already built in this process (the minimisation takes seconds)
_MISFOLDED_CACHE: dict[tuple, np.ndarray] = {}


def _read_beads(pdb: str | Path | None) -> tuple[np.ndarray, np.ndarray, list[str], list[int], list[str]]:
    """Cα beads (backbone mass) then side-chain centroid beads (side-chain mass) from an all-atom PDB."""
    import mdtraj

    path = Path(pdb) if pdb is not None else native_pdb_path()
    if not path.is_file():
        raise InputError(f"structure file not found: {path}")
    traj = mdtraj.load_pdb(str(path))
    xyz = traj.xyz[0].astype(np.float64) * 10.0   # nm -> Å
    residues = list(traj.topology.residues)
    ca_pos, ca_mass, sc_pos, sc_mass, sc_res = [], [], [], [], []
    for ri, res in enumerate(residues):
        bb = [a for a in res.atoms if a.name in BACKBONE_ATOMS]
        sc = [a for a in res.atoms if a.name not in BACKBONE_ATOMS]
        ca = [a for a in res.atoms if a.name == "CA"]
        if len(ca) != 1:
            raise InputError(f"{path}: residue {res} has no unique CA atom")
        ca_pos.append(xyz[ca[0].index])
        ca_mass.append(sum(a.element.mass for a in bb))
        if sc:
            m = np.array([a.element.mass for a in sc])
            sc_pos.append((m[:, None] * xyz[[a.index for a in sc]]).sum(0) / m.sum())
            sc_mass.append(float(m.sum()))
            sc_res.append(ri)
    native = np.concatenate([np.array(ca_pos), np.array(sc_pos).reshape(-1, 3)])
    n_res = len(residues)
    return (native, np.array(ca_mass + sc_mass, dtype=np.float64), ["CA"] * n_res + ["SC"] * len(sc_res),
            list(range(n_res)) + sc_res, [r.name for r in residues])


def _pair_distances(x: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=-1)


def _in_contact(x: np.ndarray, pairs: np.ndarray, bead_res: list[int], params: GoParameters) -> np.ndarray:
    res = np.asarray(bead_res)
    sep = np.abs(res[pairs[:, 0]] - res[pairs[:, 1]])
    return (_pair_distances(x, pairs) < params.contact_cutoff_A) & (sep >= params.min_seq_sep)


def misfolded_register_pairs(register: int, n_res: int = 10) -> list[tuple[int, int]]:
    """Cα pairs (i, register - i) of a hairpin in that register, with at least two residues in the loop."""
    return [(i, register - i) for i in range(n_res) if register - 2 * i >= 3 and register - i < n_res]


def misfolded_structure(system: GoSystem, register: int, target_A: float = 5.0) -> np.ndarray:
    """A register-shifted hairpin: the native structure pulled, by harmonic restraints to ``target_A`` on the
    cross-strand Cα pairs (i, register - i), into another pairing, then relaxed under the Gō model's bonds,
    angles, side-chain chirality and repulsion (no contact wells, no Cα dihedrals). Deterministic
    (float64 L-BFGS from the native structure)."""
    from scipy.optimize import minimize

    pairs = np.array(misfolded_register_pairs(register, len(system.ca_index)), dtype=np.int64).reshape(-1, 2)
    if len(pairs) < 2:
        raise InputError(f"misfolded_register {register} pairs fewer than two Cα pairs", hint="use 9-11 for CLN025")
    flat = replace(system, params=replace(system.params, k_dihedral_1=0.0, k_dihedral_3=0.0, misfolded_register=None),
                   dihedral_k1=np.zeros_like(system.dihedral_k1), dihedral_k3=np.zeros_like(system.dihedral_k3))
    pot = GoPotential(flat, contacts="repulsive").double()

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        x = v.reshape(-1, 3)
        e, f = pot.energy_and_forces(torch.as_tensor(x[None]))
        d = x[pairs[:, 1]] - x[pairs[:, 0]]
        r = np.linalg.norm(d, axis=-1)
        g = -f[0].numpy()
        gr = (5.0 * (r - target_A) / r)[:, None] * d            # restraint ½ k (r - target)², k = 5 kcal/mol/Å²
        np.add.at(g, pairs[:, 1], gr)
        np.add.at(g, pairs[:, 0], -gr)
        return float(e[0]) + float(np.sum(2.5 * (r - target_A) ** 2)), g.ravel()

    opt = minimize(fun, system.native.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 5000})
    return opt.x.reshape(-1, 3)


def _add_misfolded_state(system: GoSystem, mis: np.ndarray) -> None:
    """Misfolded contacts: pairs within the cutoff in ``mis``; the non-native ones get wells (their
    distance in ``mis``), and no repulsion radius may exceed 0.9 of a pair's misfolded distance."""
    p = system.params
    in_mis = _in_contact(mis, system.pairs, system.bead_residues, p)
    d_mis = _pair_distances(mis, system.pairs)
    new = in_mis & ~system.pair_is_contact
    system.misfolded = mis
    system.pair_is_misfolded_contact = new & (p.epsilon_misfolded > 0)
    rep = ~system.pair_is_contact & ~system.pair_is_misfolded_contact
    system.pair_sigma = np.where(system.pair_is_misfolded_contact, d_mis,
                                 np.where(rep, np.minimum(system.pair_sigma, 0.9 * d_mis), system.pair_sigma))
    system.misfolded_contacts = system.pairs[in_mis]
    system.misfolded_sigma = d_mis[in_mis]


class GoPotential(TermSum):
    """The Gō energy, a sum of :mod:`raycg.priors.terms` modules: harmonic bonds, cos-angles, Cα
    dihedrals (smooth minimum of native and misfolded forms), side-chain chirality and contact /
    repulsive pairs. ``forward(pos[R,B,3]) -> energy[R]`` (kcal/mol); ``energy_and_forces(pos)``
    returns the terms' analytic forces (−∇E) in one pass without autograd (several times faster
    than autograd for this small system). ``contacts="repulsive"`` keeps only the wall of each
    well (r < σ, shifted up by the depth so energy and force vanish at σ): the unfolded-state model.
    """

    def __init__(self, system: GoSystem, epsilon: float | None = None, contacts: str = "attractive"):
        if contacts not in ("attractive", "repulsive"):
            raise InputError(f"contacts must be 'attractive' or 'repulsive', got {contacts!r}")
        p = system.params
        eps = p.epsilon if epsilon is None else float(epsilon)
        nat = system.native
        cos0 = _angle_cos(nat, system.angles)
        phi0 = _dihedral_angles(nat, system.dihedrals)
        mis_x = system.misfolded
        phim = phi0 if mis_x is None else _dihedral_angles(mis_x, system.dihedrals)
        contact = system.pair_is_contact
        mis = system.pair_is_misfolded_contact if system.pair_is_misfolded_contact is not None else contact & False
        well = contact | mis
        depth = np.where(contact, eps, np.where(mis, p.epsilon_misfolded, 0.0))
        trunc = well & (contacts == "repulsive")
        super().__init__(system.n_beads, [
            HarmonicBond(system.bonds, np.full(len(system.bonds), p.k_bond),
                         _bond_geometry(nat, system.bonds)),
            CosineAngle(system.angles, p.k_angle / (1.0 - cos0**2), cos0),
            GoDihedral(system.dihedrals, system.dihedral_k1, system.dihedral_k3, phi0, phim,
                       mixing=0.0 if system.misfolded is None else float(p.dihedral_mixing_kcal)),
            Chirality(system.chiralities, np.full(len(system.chiralities), p.k_chirality),
                      _chirality_np(nat, system.chiralities)),
            ContactPairs(system.pairs, system.pair_sigma,
                         np.where(well, 5.0 * depth, p.epsilon_repulsion),
                         np.where(well, 6.0 * depth, 0.0),
                         shift=np.where(trunc, depth, 0.0), truncate=trunc),
        ])
        self.epsilon = eps
        self.contacts = contacts


def go_description(system: GoSystem, temperature_K: float) -> dict[str, Any]:
    """Gō parameters for provenance (JSON-serialisable)."""
    return {
        "model": "two-resolution Go model (Calpha + side-chain centre of mass; none for Gly)",
        "parameters": system.params.as_dict(),
        "n_beads": system.n_beads,
        "n_native_contacts": system.n_contacts,
        "native_contacts": system.pairs[system.pair_is_contact].tolist(),
        "masses_amu": [round(float(m), 4) for m in system.masses],
        "temperature_K": float(temperature_K),
        "epsilon_over_kT": system.params.epsilon / kbt(temperature_K),
        "angle_form": "harmonic in cos(theta)",
        "source_structure": PDB_RESOURCE,
    } | _misfolded_description(system, temperature_K)


def _misfolded_description(system: GoSystem, temperature_K: float) -> dict[str, Any]:
    if system.misfolded is None:
        return {}
    ca = system.ca_index
    return {
        "misfolded_state": ("register-shifted hairpin: Calpha pairs "
                            f"{misfolded_register_pairs(system.params.misfolded_register)} restrained to 5 A, "
                            "relaxed without contact wells or dihedrals"),
        "misfolded_rmsd_to_native_A": round(float(kabsch_rmsd(system.misfolded[None, ca], system.native[ca])[0]), 3),
        "n_misfolded_contacts": int(len(system.misfolded_contacts)),
        "misfolded_wells": system.pairs[system.pair_is_misfolded_contact].tolist(),
        "epsilon_misfolded_over_kT": system.params.epsilon_misfolded / kbt(temperature_K),
        "misfolded_structure_A": np.round(system.misfolded, 3).tolist(),
    }


def kabsch_rmsd(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RMSD (Å) of each frame ``coords`` [F,N,3] to ``reference`` [N,3] after optimal proper rotation
    (the shared :func:`raycg.cv.rmsd_to`)."""
    from raycg.cv.rmsd import rmsd_to

    return rmsd_to(np.asarray(coords), np.asarray(reference, np.float64))


__all__ = [
    "GoParameters", "GoPotential", "GoSystem", "build_go_system", "go_description", "kabsch_rmsd",
    "native_pdb_path", "SEQUENCE",
]
