"""Tiny synthetic CG data with exactly known physics for the data tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from raycg import units as U
from raycg.data import CGDataset, DatasetMeta
from raycg.data.mapping import beads_from_sequence
from raycg.synth.go_model import native_pdb_path

# the structure the package ships (a fresh clone has nothing beside it)
CLN025_PDB = native_pdb_path()
SEQ = "YYDPETGTWY"


def harmonic_chain(n_frames: int, n_beads: int = 10, temperature: float = 350.0, k: float = 60.0,
                   r0: float = 3.8, noise: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact Boltzmann samples of a freely jointed chain with harmonic bonds (Å) and its forces
    (kcal/mol/Å) plus zero-mean Gaussian noise (a stand-in for the solvent's fluctuating force)."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(U.kbt(temperature) / k)
    nb = n_frames * (n_beads - 1)
    r = np.empty(0)
    rmax = r0 + 8 * sigma
    while r.size < nb:  # p(r) ∝ r² exp(-k(r-r0)²/2kT): Gaussian proposal, accept with (r/rmax)²
        prop = rng.normal(r0, sigma, 2 * nb)
        r = np.concatenate([r, prop[rng.random(prop.size) < (prop / rmax) ** 2]])
    r = r[:nb].reshape(n_frames, n_beads - 1)
    u = rng.normal(size=(n_frames, n_beads - 1, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    bonds = u * r[..., None]
    x = np.concatenate([np.zeros((n_frames, 1, 3)), np.cumsum(bonds, axis=1)], axis=1)
    x += rng.normal(0, 5.0, (n_frames, 1, 3))
    fb = (-k * (r - r0))[..., None] * u  # force on bead j+1 from bond j
    f = np.zeros_like(x)
    f[:, 1:] += fb
    f[:, :-1] -= fb
    f += rng.normal(0, noise, f.shape)
    return x.astype(np.float32), f.astype(np.float32)


def make_dataset(n_frames: int = 4000, n_traj: int = 4, seed: int = 0, **kw) -> CGDataset:
    x, f = harmonic_chain(n_frames, seed=seed, **kw)
    beads, bonds = beads_from_sequence(SEQ)
    offsets = np.linspace(0, n_frames, n_traj + 1).astype(np.int64)
    meta = DatasetMeta(n_frames=n_frames, n_beads=10, n_trajectories=n_traj, temperature_K=350.0,
                       dt_frame_ps=100.0, beads=beads, bonds=bonds)
    meta.mapping.kind = "identity"
    return CGDataset(coords=x, forces=f, traj_offsets=offsets, meta=meta)


def tree_digest(path: Path) -> dict[str, str]:
    """sha256 and mtime of every file under ``path`` (to prove inputs are untouched)."""
    out = {}
    for p in sorted(Path(path).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest() + f"@{p.stat().st_mtime_ns}"
    return out


