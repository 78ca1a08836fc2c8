"""A two-resolution structure-based (Gō-type) model of CLN025 (chignolin variant YYDPETGTWY).

Beads (19): one Cα bead per residue (beads 0..9, at the Cα atom, carrying the backbone mass)
followed by one side-chain bead per non-glycine residue (beads 10..18, at the side chain's
centre of mass, carrying the side-chain mass). Energy terms, all at the native values of the
all-atom structure:

- harmonic bonds Cα(i)–Cα(i+1) and Cα(i)–SC(i): ½ k_b (r − r₀)²;
- angles Cα–Cα–Cα and SC(i)–Cα(i)–Cα(i±1), harmonic in cos θ (no singularity at 180°):
  ½ k_θ/sin²θ₀ (cos θ − cos θ₀)², which equals ½ k_θ (θ − θ₀)² near θ₀;
- Cα dihedrals k₁[1 − cos(φ − φ₀)] + k₃[1 − cos 3(φ − φ₀)];
- side-chain chirality ½ k_χ (χ − χ₀)² with χ = u·(v×w)/(|u||v||w|), u, v = Cα(i∓1) − Cα(i) and
  w = SC(i) − Cα(i) (neighbours Cα2, Cα3 / Cα9, Cα8 at the termini); unlike a dihedral it has no
  singularity when three beads become collinear, and it keeps the side chains on their native face;
- native contacts: bead pairs under ``contact_cutoff_A`` in the native structure whose residues
  are at least ``min_seq_sep`` apart, with a 12-10 well ε[5(σ/r)¹² − 6(σ/r)¹⁰] (minimum −ε at
  the native distance σ);
- every other pair not 1-2 or 1-3 in the bead graph: repulsion ε_rep(σ_rep/r)¹² with
  σ_rep = min(``repulsion_sigma_A``, 0.9 × native distance).

With ``misfolded_register`` set the model has a second, misfolded state (a dual-basin structure-based
model): a register-shifted hairpin made by :func:`misfolded_structure`; its contacts that are not native
contacts get 12-10 wells of depth ``epsilon_misfolded`` at their misfolded distances (repulsion radii are
capped at 0.9 × the misfolded distance too), and every Cα dihedral term becomes the smooth minimum of its
native and misfolded forms, so that neither state is strained by the backbone terms.

Units: Å, kcal/mol, amu.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from raycg.errors import InputError
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


def _dihedral_np(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    t = _dihedral_cos_sin(torch.as_tensor(x[None], dtype=torch.float64), torch.as_tensor(d))
    return np.arctan2(t[1][0].numpy(), t[0][0].numpy())


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
    pairs = _nonbonded_pairs(len(native), bonds)
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


def _nonbonded_pairs(n_beads: int, bonds: list[tuple[int, int]]) -> np.ndarray:
    """Every bead pair that is not a 1-2 or 1-3 neighbour in the bead graph."""
    adj: list[set[int]] = [set() for _ in range(n_beads)]
    for a, b in bonds:
        adj[a].add(b)
        adj[b].add(a)
    excluded = set()
    for a in range(n_beads):
        for b in adj[a]:
            excluded.add((min(a, b), max(a, b)))
            for c in adj[b]:
                if c != a:
                    excluded.add((min(a, c), max(a, c)))
    return np.array([(i, j) for i in range(n_beads) for j in range(i + 1, n_beads) if (i, j) not in excluded],
                    dtype=np.int64)


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


def _dihedral_cos_sin(pos: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos φ and sin φ (IUPAC sign) of dihedrals ``d`` [Nd,4] for ``pos`` [R,B,3] (returns [R,Nd])."""
    p0, p1, p2, p3 = (pos[:, d[:, k]] for k in range(4))
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    m = torch.linalg.cross(b1, b2, dim=-1)
    n = torch.linalg.cross(b2, b3, dim=-1)
    b2n = b2 / torch.linalg.vector_norm(b2, dim=-1, keepdim=True)
    x = (m * n).sum(-1)
    y = (torch.linalg.cross(m, n, dim=-1) * b2n).sum(-1)
    norm = torch.sqrt(x * x + y * y).clamp_min(1e-30)
    return x / norm, y / norm


def _dihedral_terms(cphi: torch.Tensor, sphi: torch.Tensor, cos0: torch.Tensor, sin0: torch.Tensor, k1: torch.Tensor,
                    k3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """k1 [1 - cos(φ-φ0)] + k3 [1 - cos 3(φ-φ0)] and its derivative dE/dφ, from cos φ, sin φ."""
    cd = cphi * cos0 + sphi * sin0                      # cos(φ-φ0)
    sd = sphi * cos0 - cphi * sin0                      # sin(φ-φ0)
    energy = k1 * (1.0 - cd) + k3 * (1.0 - (4.0 * cd * cd * cd - 3.0 * cd))
    return energy, k1 * sd + 3.0 * k3 * (3.0 * sd - 4.0 * sd * sd * sd)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot product over the leading (x, y, z) axis of coordinate-major tensors [3, ...]."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


class GoPotential(nn.Module):
    """The Gō energy as a ``torch.nn.Module``: ``forward(pos[R,B,3]) -> energy[R]`` (kcal/mol).

    ``energy_and_forces(pos)`` returns energies and analytic forces (−∇E) in one pass without
    autograd (several times faster than autograd for this small system); ``forward`` evaluates the
    same expressions differentiably. Internally positions are coordinate-major ([3,B,R]) so that
    gathers copy contiguous rows and every operation runs over long contiguous replica vectors.
    """

    def __init__(self, system: GoSystem, epsilon: float | None = None, contacts: str = "attractive"):
        super().__init__()
        if contacts not in ("attractive", "repulsive"):
            raise InputError(f"contacts must be 'attractive' or 'repulsive', got {contacts!r}")
        p = system.params
        eps = p.epsilon if epsilon is None else float(epsilon)
        self.n_beads = system.n_beads
        self.epsilon = eps
        f64 = torch.float64
        nat = system.native

        def col(a):  # [N] -> [N, 1] float64, broadcasts against [N, R]
            return torch.as_tensor(np.asarray(a, dtype=np.float64)[:, None], dtype=f64)

        self.register_buffer("bi", torch.as_tensor(system.bonds[:, 0]))
        self.register_buffer("bj", torch.as_tensor(system.bonds[:, 1]))
        self.register_buffer("r0", col(_bond_geometry(nat, system.bonds)))
        self.register_buffer("kb", col(np.full(len(system.bonds), p.k_bond)))
        cos0 = _angle_cos(nat, system.angles)
        self.register_buffer("aa", torch.as_tensor(system.angles[:, 0]))
        self.register_buffer("ab", torch.as_tensor(system.angles[:, 1]))
        self.register_buffer("ac", torch.as_tensor(system.angles[:, 2]))
        self.register_buffer("cos0", col(cos0))
        self.register_buffer("k_cos", col(p.k_angle / (1.0 - cos0**2)))
        phi0 = _dihedral_np(nat, system.dihedrals)
        for k in range(4):
            self.register_buffer(f"d{k}", torch.as_tensor(system.dihedrals[:, k]))
        self.register_buffer("cos_phi0", col(np.cos(phi0)))
        self.register_buffer("sin_phi0", col(np.sin(phi0)))
        phim = phi0 if system.misfolded is None else _dihedral_np(system.misfolded, system.dihedrals)
        self.register_buffer("cos_phim", col(np.cos(phim)))
        self.register_buffer("sin_phim", col(np.sin(phim)))
        self.dihedral_mix = 0.0 if system.misfolded is None else float(p.dihedral_mixing_kcal)
        self.register_buffer("k1", col(system.dihedral_k1))
        self.register_buffer("k3", col(system.dihedral_k3))
        for k, name in enumerate(("ca_", "cb_", "cc_", "cs_")):
            self.register_buffer(name, torch.as_tensor(system.chiralities[:, k]))
        self.register_buffer("chi0", col(_chirality_np(nat, system.chiralities)))
        self.register_buffer("kchi", col(np.full(len(system.chiralities), p.k_chirality)))
        contact = system.pair_is_contact
        mis = system.pair_is_misfolded_contact if system.pair_is_misfolded_contact is not None else contact & False
        well = contact | mis
        depth = np.where(contact, eps, np.where(mis, p.epsilon_misfolded, 0.0))
        self.register_buffer("pi", torch.as_tensor(system.pairs[:, 0]))
        self.register_buffer("pj", torch.as_tensor(system.pairs[:, 1]))
        self.register_buffer("sigma2", col(system.pair_sigma**2))
        self.register_buffer("c12", col(np.where(well, 5.0 * depth, p.epsilon_repulsion)))
        self.register_buffer("c10", col(np.where(well, 6.0 * depth, 0.0)))
        # contacts="repulsive": contact pairs keep only the wall of their well (r < σ, shifted up by the
        # depth so energy and force vanish continuously at σ): the unfolded-state model used to make starts
        self.contacts = contacts
        trunc = well & (contacts == "repulsive")
        self.register_buffer("shift", col(np.where(trunc, depth, 0.0)))
        self.register_buffer("truncate", torch.as_tensor(trunc)[:, None])
        self._any_truncated = bool(trunc.any())
        self._float_names = ("r0", "kb", "cos0", "k_cos", "cos_phi0", "sin_phi0", "k1", "k3", "chi0", "kchi", "sigma2",
                             "c12", "c10", "shift", "cos_phim", "sin_phim")
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}

    def _params(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = {n: getattr(self, n).to(dtype=like.dtype, device=like.device)
                                for n in self._float_names}
        return self._cache[key]

    def _apply(self, fn, recurse=True):  # keep the per-dtype cache consistent with .to()/.double()
        self._cache = {}
        return super()._apply(fn, recurse)

    def _compute(self, pos: torch.Tensor, forces: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Energy [R] and, with ``forces``, analytic forces [R, B, 3]: the sum of the terms below, each of
        which adds its forces into ``F`` (coordinates first: [3, B, R])."""
        if pos.ndim != 3 or pos.shape[1] != self.n_beads or pos.shape[2] != 3:
            raise InputError(f"Go potential expects positions [R, {self.n_beads}, 3], got {tuple(pos.shape)}")
        c = self._params(pos)
        P = pos.permute(2, 1, 0).contiguous()         # [3, B, R]
        F = torch.zeros_like(P) if forces else None
        energy = self._bonds(P, c, F)
        for term in (self._angles, self._dihedrals, self._chirality, self._pairs):
            energy = energy + term(P, c, F)
        return energy, (F.permute(2, 1, 0) if forces else None)

    def _bonds(self, P: torch.Tensor, c: dict[str, torch.Tensor], F: torch.Tensor | None) -> torch.Tensor:
        """½ k_b (r − r0)²."""
        d = P.index_select(1, self.bj) - P.index_select(1, self.bi)
        r = torch.sqrt(_dot(d, d))
        dr = r - c["r0"]
        if F is not None:
            fj = (-(c["kb"] * dr) / r).unsqueeze(0) * d
            F.index_add_(1, self.bj, fj)
            F.index_add_(1, self.bi, -fj)
        return 0.5 * (c["kb"] * dr * dr).sum(0)

    def _angles(self, P: torch.Tensor, c: dict[str, torch.Tensor], F: torch.Tensor | None) -> torch.Tensor:
        """½ k (cos θ − cos θ0)², harmonic in cos θ."""
        sel = P.index_select
        u = sel(1, self.aa) - sel(1, self.ab)
        v = sel(1, self.ac) - sel(1, self.ab)
        lu = torch.sqrt(_dot(u, u))
        lv = torch.sqrt(_dot(v, v))
        cos = _dot(u, v) / (lu * lv)
        dc = cos - c["cos0"]
        if F is not None:
            g = -(c["k_cos"] * dc)                      # -dE/dcos
            fa = g.unsqueeze(0) * (v / (lu * lv).unsqueeze(0) - (cos / (lu * lu)).unsqueeze(0) * u)
            fc = g.unsqueeze(0) * (u / (lu * lv).unsqueeze(0) - (cos / (lv * lv)).unsqueeze(0) * v)
            F.index_add_(1, self.aa, fa)
            F.index_add_(1, self.ac, fc)
            F.index_add_(1, self.ab, -(fa + fc))
        return 0.5 * (c["k_cos"] * dc * dc).sum(0)

    def _dihedrals(self, P: torch.Tensor, c: dict[str, torch.Tensor], F: torch.Tensor | None) -> torch.Tensor:
        """k1 [1 − cos(φ − φ0)] + k3 [1 − cos 3(φ − φ0)], with a smooth minimum against the misfolded form."""
        sel = P.index_select
        p0, p1, p2, p3 = sel(1, self.d0), sel(1, self.d1), sel(1, self.d2), sel(1, self.d3)
        b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
        m = torch.linalg.cross(b1, b2, dim=0)
        n = torch.linalg.cross(b2, b3, dim=0)
        lb2 = torch.sqrt(_dot(b2, b2))
        x = _dot(m, n)
        y = _dot(torch.linalg.cross(m, n, dim=0), b2) / lb2
        norm = torch.sqrt(x * x + y * y).clamp_min(1e-30)
        cphi, sphi = x / norm, y / norm
        v, dv = _dihedral_terms(cphi, sphi, c["cos_phi0"], c["sin_phi0"], c["k1"], c["k3"])
        if self.dihedral_mix > 0:
            vm, dvm = _dihedral_terms(cphi, sphi, c["cos_phim"], c["sin_phim"], c["k1"], c["k3"])
            low = torch.minimum(v, vm)
            wn, wm = torch.exp((low - v) / self.dihedral_mix), torch.exp((low - vm) / self.dihedral_mix)
            v = low - self.dihedral_mix * torch.log(wn + wm)
            dv = (wn * dv + wm * dvm) / (wn + wm)
        if F is not None:
            m2 = _dot(m, m).clamp_min(1e-30)
            n2 = _dot(n, n).clamp_min(1e-30)
            f0 = (dv * lb2 / m2).unsqueeze(0) * m
            f3 = (-dv * lb2 / n2).unsqueeze(0) * n
            lb22 = (lb2 * lb2).unsqueeze(0)
            pp = -_dot(b1, b2).unsqueeze(0) / lb22
            qq = -_dot(b3, b2).unsqueeze(0) / lb22
            s = pp * f0 - qq * f3
            F.index_add_(1, self.d0, f0)
            F.index_add_(1, self.d1, -(f0 - s))
            F.index_add_(1, self.d2, -(f3 + s))
            F.index_add_(1, self.d3, f3)
        return v.sum(0)

    def _chirality(self, P: torch.Tensor, c: dict[str, torch.Tensor], F: torch.Tensor | None) -> torch.Tensor:
        """Side-chain chirality: ½ k (χ − χ0)², χ = u·(v×w) / (|u||v||w|)."""
        sel = P.index_select
        pb = sel(1, self.cb_)
        u, v, w = sel(1, self.ca_) - pb, sel(1, self.cc_) - pb, sel(1, self.cs_) - pb
        uu, vv, ww = _dot(u, u), _dot(v, v), _dot(w, w)
        vxw = torch.linalg.cross(v, w, dim=0)
        inv_n = 1.0 / torch.sqrt(uu * vv * ww)
        chi = _dot(u, vxw) * inv_n
        dchi = chi - c["chi0"]
        if F is not None:
            g = (-(c["kchi"] * dchi)).unsqueeze(0)       # -dE/dχ
            gi, gc = g * inv_n.unsqueeze(0), g * chi.unsqueeze(0)
            fu = gi * vxw - gc * u / uu.unsqueeze(0)
            fv = gi * torch.linalg.cross(w, u, dim=0) - gc * v / vv.unsqueeze(0)
            fw = gi * torch.linalg.cross(u, v, dim=0) - gc * w / ww.unsqueeze(0)
            F.index_add_(1, self.ca_, fu)
            F.index_add_(1, self.cc_, fv)
            F.index_add_(1, self.cs_, fw)
            F.index_add_(1, self.cb_, -(fu + fv + fw))
        return 0.5 * (c["kchi"] * dchi * dchi).sum(0)

    def _pairs(self, P: torch.Tensor, c: dict[str, torch.Tensor], F: torch.Tensor | None) -> torch.Tensor:
        """Pairs: c12 (σ/r)^12 − c10 (σ/r)^10 (+ shift; truncated repulsive contacts are 0 beyond σ)."""
        d = P.index_select(1, self.pj) - P.index_select(1, self.pi)
        inv_r2 = 1.0 / _dot(d, d)
        x = c["sigma2"] * inv_r2
        x2 = x * x
        x5 = x2 * x2 * x
        e_pair = x5 * (c["c12"] * x - c["c10"]) + c["shift"]
        off = self.truncate & (x < 1.0) if self._any_truncated else None
        if off is not None:
            e_pair = torch.where(off, 0.0, e_pair)
        if F is not None:
            mag = (12.0 * c["c12"] * x - 10.0 * c["c10"]) * x5 * inv_r2
            if off is not None:
                mag = torch.where(off, 0.0, mag)
            fj = mag.unsqueeze(0) * d
            F.index_add_(1, self.pj, fj)
            F.index_add_(1, self.pi, -fj)
        return e_pair.sum(0)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self._compute(pos, forces=False)[0]

    @torch.no_grad()
    def energy_and_forces(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energy, forces = self._compute(pos, forces=True)
        return energy, forces


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
