"""Bonded topology of a CG system: bonds, angles, dihedrals and non-bonded pairs from CG bonds."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from raycg.errors import InputError


@dataclass(frozen=True)
class PriorTopology:
    """Index arrays (int64, sorted, canonical order) of every prior term of a system.

    bonds [Nb,2] (i<j); angles [Na,3] (i-j-k bonded path, i<k); dihedrals [Nd,4] (i-j-k-l
    bonded path, i<l); pairs [Np,2] (i<j, bond separation ≥ the exclusion); separation [B,B]
    shortest bond-path length (-1: not connected).
    """

    n_beads: int
    bonds: np.ndarray
    angles: np.ndarray
    dihedrals: np.ndarray
    pairs: np.ndarray
    separation: np.ndarray


def canonical_bonds(bonds: np.ndarray, n_beads: int, where: str = "dataset") -> np.ndarray:
    """Validate CG bonds and return them as unique sorted (i<j) pairs, int64 [N,2]."""
    b = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    if len(b) == 0:
        raise InputError("the dataset has no CG bonds (meta.json 'bonds' is empty); priors need the bonded "
                         "topology", where=where,
                         hint="re-import the dataset with its bonds (Cα maps bond consecutive residues)")
    bad = (b < 0) | (b >= n_beads)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise InputError(f"bond {row} {tuple(int(v) for v in b[row])} refers to a bead outside 0..{n_beads - 1}",
                         where=where, hint="fix the dataset's bonds")
    same = b[:, 0] == b[:, 1]
    if same.any():
        row = int(np.flatnonzero(same)[0])
        raise InputError(f"bond {row} joins bead {int(b[row, 0])} to itself", where=where,
                         hint="fix the dataset's bonds")
    b = np.sort(b, axis=1)
    return np.unique(b, axis=0)


def bond_separation(bonds: np.ndarray, n_beads: int) -> np.ndarray:
    """Shortest bond-path length between every pair of beads, int64 [B,B] (-1: disconnected)."""
    nbrs: list[list[int]] = [[] for _ in range(n_beads)]
    for i, j in bonds:
        nbrs[int(i)].append(int(j))
        nbrs[int(j)].append(int(i))
    sep = np.full((n_beads, n_beads), -1, dtype=np.int64)
    for s in range(n_beads):
        sep[s, s] = 0
        q = deque([s])
        while q:
            a = q.popleft()
            for c in nbrs[a]:
                if sep[s, c] < 0:
                    sep[s, c] = sep[s, a] + 1
                    q.append(c)
    return sep


def build_topology(bonds: np.ndarray, n_beads: int, repulsion_min_bond_separation: int = 3,
                   where: str = "dataset") -> PriorTopology:
    """All angles and dihedrals along bonded paths, and the non-bonded repulsion pairs."""
    b = canonical_bonds(bonds, n_beads, where)
    nbrs: list[list[int]] = [[] for _ in range(n_beads)]
    for i, j in b:
        nbrs[int(i)].append(int(j))
        nbrs[int(j)].append(int(i))
    angles = set()
    for j in range(n_beads):
        for i in nbrs[j]:
            for k in nbrs[j]:
                if i < k:
                    angles.add((i, j, k))
    dihedrals = set()
    for j, k in b:
        for jj, kk in ((int(j), int(k)), (int(k), int(j))):
            for i in nbrs[jj]:
                if i == kk:
                    continue
                for ll in nbrs[kk]:
                    if ll in (jj, i):
                        continue
                    quad = (i, jj, kk, ll) if i < ll else (ll, kk, jj, i)
                    dihedrals.add(quad)
    sep = bond_separation(b, n_beads)
    iu, ju = np.triu_indices(n_beads, k=1)
    s = sep[iu, ju]
    keep = (s < 0) | (s >= repulsion_min_bond_separation)
    pairs = np.stack([iu[keep], ju[keep]], axis=1).astype(np.int64)

    def arr(x: set, m: int) -> np.ndarray:
        return np.array(sorted(x), dtype=np.int64).reshape(-1, m)

    return PriorTopology(n_beads=n_beads, bonds=b, angles=arr(angles, 3), dihedrals=arr(dihedrals, 4),
                         pairs=pairs.reshape(-1, 2), separation=sep)
