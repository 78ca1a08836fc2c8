"""Exact samplers of known prior potentials and tiny in-memory CG datasets for the prior tests."""

from __future__ import annotations

import numpy as np

from raycg import units as U
from raycg.data.format import BeadInfo, CGDataset, DatasetMeta


def sample_density(logp, lo: float, hi: float, n: int, rng: np.random.Generator, grid: int = 400_001) -> np.ndarray:
    """n exact samples (inverse CDF on a fine grid) of a 1-D density exp(logp(x)) on [lo, hi]."""
    x = np.linspace(lo, hi, grid)
    lp = logp(x)
    p = np.exp(lp - lp.max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, x)


def sample_bond(k: float, r0: float, temperature: float, n: int, rng) -> np.ndarray:
    """r ~ r² exp(−½k(r−r0)²/kT): the distance distribution of a harmonic bond in 3-D."""
    kt = U.kbt(temperature)
    s = np.sqrt(kt / k)
    return sample_density(lambda r: 2 * np.log(r) - 0.5 * k * (r - r0) ** 2 / kt, 1e-6, r0 + 10 * s, n, rng)


def sample_angle(k: float, t0: float, temperature: float, n: int, rng) -> np.ndarray:
    """θ ~ sin θ exp(−½k(θ−θ0)²/kT) on [0, π]."""
    kt = U.kbt(temperature)
    return sample_density(lambda t: np.log(np.sin(t) + 1e-300) - 0.5 * k * (t - t0) ** 2 / kt, 0.0, np.pi, n, rng)


def fourier(phi: np.ndarray, cos: list[float], sin: list[float]) -> np.ndarray:
    n = np.arange(1, len(cos) + 1)
    return np.cos(np.outer(phi, n)) @ np.asarray(cos) + np.sin(np.outer(phi, n)) @ np.asarray(sin)


def sample_dihedral(cos: list[float], sin: list[float], temperature: float, n: int, rng) -> np.ndarray:
    """φ ~ exp(−U(φ)/kT) on [−π, π] (no Jacobian for a dihedral)."""
    kt = U.kbt(temperature)
    return sample_density(lambda p: -fourier(p, cos, sin) / kt, -np.pi, np.pi, n, rng)


def random_rotations(n: int, rng) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def chain_from_internal(r: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Coordinates [F,4,3] of a 4-bead chain with bonds r [F,3], angles θ [F,2], dihedral φ [F] (NeRF)."""
    f = len(r)
    x = np.zeros((f, 4, 3))
    x[:, 0, 0] = r[:, 0]
    x[:, 2, 0] = r[:, 1] * np.cos(theta[:, 0])
    x[:, 2, 1] = r[:, 1] * np.sin(theta[:, 0])
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    bc = (c - b) / np.linalg.norm(c - b, axis=1, keepdims=True)
    nrm = np.cross(b - a, bc)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    m = np.cross(nrm, bc)
    t2, p = theta[:, 1], phi
    d2 = np.stack([-r[:, 2] * np.cos(t2), r[:, 2] * np.sin(t2) * np.cos(p), r[:, 2] * np.sin(t2) * np.sin(p)], 1)
    x[:, 3] = c + d2[:, :1] * bc + d2[:, 1:2] * m + d2[:, 2:3] * nrm
    return x


def make_dataset(coords: np.ndarray, bonds: list[tuple[int, int]], temperature: float = 350.0,
                 weights: np.ndarray | None = None, n_traj: int = 1, types: list[int] | None = None) -> CGDataset:
    """An in-memory CGDataset (float32 coords, no forces) with the given bonds."""
    f, b, _ = coords.shape
    offsets = np.linspace(0, f, n_traj + 1).round().astype(np.int64)
    beads = BeadInfo(names=["CA"] * b, types=types or list(range(b)), masses=[12.0] * b,
                     residue_names=["ALA"] * b, residue_ids=list(range(1, b + 1)))
    meta = DatasetMeta(name="synthetic", n_frames=f, n_beads=b, n_trajectories=n_traj, temperature_K=temperature,
                       dt_frame_ps=1.0, beads=beads, bonds=[tuple(x) for x in bonds], has_forces=False,
                       has_weights=weights is not None)
    return CGDataset(coords=np.asarray(coords, np.float32), forces=None, traj_offsets=offsets, meta=meta,
                     weights=weights)
