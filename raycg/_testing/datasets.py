"""Small synthetic CG datasets with known structure, for tests and benchmarks (no physics engine).

:func:`two_state_dataset` makes trajectories of a 10-bead chain that switches slowly between two
well-separated states ("folded": a compact hairpin; "unfolded": an extended chain), with thermal
noise on top. The state sequence is a two-state Markov chain with switching probability
``p_switch`` per frame (the folded state of a 10-bead chain is the CLN025 native Cα trace), so the
slowest process (the switching) has the known implied timescale ``-dt / ln(1 - 2 p_switch)``.
"""

from __future__ import annotations

import functools

import numpy as np

from raycg.data.format import BeadInfo, CGDataset, DatasetMeta, compute_content_hash

CLN025_SEQUENCE = ("TYR", "TYR", "ASP", "PRO", "GLU", "THR", "GLY", "THR", "TRP", "TYR")


def hairpin(n_beads: int = 10, bond: float = 3.8) -> np.ndarray:
    """A compact β-hairpin-like Cα trace (Å): two strands 5 Å apart joined by a turn, chiral (twisted)."""
    half = n_beads // 2
    pts = []
    for i in range(n_beads):
        if i < half:
            s, side = i, 0.0
        else:
            s, side = n_beads - 1 - i, 5.0
        twist = 0.8 * np.sin(0.9 * s) * (1 if i < half else -1)
        pts.append([s * 3.3, side + 0.4 * (s % 2), 1.5 * (s % 2) + twist + 0.3 * s])
    x = np.asarray(pts, dtype=np.float64)
    # rescale consecutive distances to the bond length, keeping directions
    out = [x[0]]
    for i in range(1, n_beads):
        d = x[i] - x[i - 1]
        out.append(out[-1] + bond * d / np.linalg.norm(d))
    out = np.asarray(out)
    return out - out.mean(0)


@functools.lru_cache(maxsize=1)
def _native_ca() -> np.ndarray:
    """The Cα trace (Å, centred) of the packaged CLN025 structure; the synthetic hairpin if it is missing."""
    from importlib import resources
    from pathlib import Path

    path = Path(str(resources.files("raycg").joinpath("resources", "cln025_allatom.pdb")))
    if not path.is_file():
        return hairpin(10)
    import mdtraj

    t = mdtraj.load(str(path))
    x = t.xyz[0, t.topology.select("name CA")].astype(np.float64) * 10.0
    return x - x.mean(0)


def native_ca() -> np.ndarray:
    """The Cα trace (Å, centred) of the packaged CLN025 structure; the synthetic hairpin if it is missing."""
    return _native_ca().copy()


def extended(n_beads: int = 10, bond: float = 3.8) -> np.ndarray:
    """A zig-zag extended chain (Å)."""
    x = np.zeros((n_beads, 3))
    for i in range(n_beads):
        x[i] = [i * bond * 0.93, 1.4 * (i % 2), 0.0]
    return x - x.mean(0)


def make_meta(n_beads: int, n_frames: int, n_trajectories: int, *, dt_frame_ps: float = 1.0,
              temperature_K: float = 300.0, name: str = "synthetic") -> DatasetMeta:
    res = [CLN025_SEQUENCE[i % len(CLN025_SEQUENCE)] for i in range(n_beads)]
    names = sorted(set(res))
    beads = BeadInfo(names=["CA"] * n_beads, types=[names.index(r) for r in res], type_names=names,
                     masses=[12.011] * n_beads, residue_names=res, residue_ids=list(range(1, n_beads + 1)))
    return DatasetMeta(name=name, n_frames=n_frames, n_beads=n_beads, n_trajectories=n_trajectories,
                       temperature_K=temperature_K, dt_frame_ps=dt_frame_ps, beads=beads,
                       bonds=[(i, i + 1) for i in range(n_beads - 1)], has_forces=False)


def make_dataset(coords: np.ndarray, lengths, *, dt_frame_ps: float = 1.0, temperature_K: float = 300.0,
                 weights: np.ndarray | None = None, name: str = "synthetic") -> CGDataset:
    """An in-memory :class:`CGDataset` (no forces) from coordinates and trajectory lengths."""
    coords = np.asarray(coords, dtype=np.float32)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    meta = make_meta(coords.shape[1], coords.shape[0], len(lengths), dt_frame_ps=dt_frame_ps,
                     temperature_K=temperature_K, name=name)
    meta.has_weights = weights is not None
    ds = CGDataset(coords=coords, forces=None, traj_offsets=offsets, meta=meta, weights=weights)
    ds.meta.content_hash = compute_content_hash(ds)
    return ds


def two_state_states(n_traj: int, length: int, p_switch: float, rng: np.random.Generator) -> np.ndarray:
    """Two-state Markov chains ``[n_traj, length]`` (0 = folded, 1 = unfolded), random start state."""
    flips = rng.random((n_traj, length)) < p_switch
    flips[:, 0] = rng.random(n_traj) < 0.5
    return (np.cumsum(flips, axis=1) % 2).astype(np.int8)


def two_state_coords(states: np.ndarray, noise_A: float, rng: np.random.Generator,
                     n_beads: int = 10) -> np.ndarray:
    """Coordinates ``[N, B, 3]`` for a flat state array: native or extended structure plus noise."""
    states = np.asarray(states).reshape(-1)
    a = native_ca() if n_beads == 10 else hairpin(n_beads)
    b = extended(n_beads)
    x = np.where(states[:, None, None] == 0, a[None], b[None]).astype(np.float32)
    x += rng.normal(0.0, noise_A, size=x.shape).astype(np.float32)
    return x


def two_state_dataset(n_traj: int = 8, length: int = 2000, p_switch: float = 0.005, noise_A: float = 0.4,
                      seed: int = 0, dt_frame_ps: float = 1.0, n_beads: int = 10,
                      name: str = "two-state") -> tuple[CGDataset, np.ndarray]:
    """A dataset of slowly switching two-state trajectories and the per-frame state labels."""
    rng = np.random.default_rng(seed)
    states = two_state_states(n_traj, length, p_switch, rng)
    coords = two_state_coords(states, noise_A, rng, n_beads)
    ds = make_dataset(coords, [length] * n_traj, dt_frame_ps=dt_frame_ps, name=name)
    return ds, states.reshape(-1)
