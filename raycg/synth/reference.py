"""The embedded CLN025 reference dataset: the Gō model simulated with raycg's BAOAB engine.

:func:`embedded_dataset` writes the dataset directory into the cache from the packaged resource
(``raycg/resources/embedded_cln025.npz``) and checks its content hash; :func:`make_embedded_reference`
(``raycg data synth``) regenerates it (same seed, machine and torch build: the same bytes). 10 Cα beads
(slice map of the 19-bead model; noisy mapped forces), Å and kcal/mol/Å; each replica is one trajectory;
a summary (populations, transitions, TICA landscape) is in ``meta.provenance["summary"]``. The
protocol step by step: docs/data.md ("How the embedded reference is made").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raycg.cv.transitions import count_two_state_transitions
from raycg.errors import InputError
from raycg.synth.go_model import GoParameters, GoPotential, build_go_system, go_description, kabsch_rmsd
from raycg.synth.resource import COORD_RESOLUTION_A, FORCE_RESOLUTION, quantize

GENERATOR = "raycg.synth.embedded-cln025"
GENERATOR_VERSION = 2
CACHE_NAME = f"embedded-cln025-v{GENERATOR_VERSION}-seed0"

#: Folded state: Cα RMSD to the native Cα trace below this (Å); used for the folded population.
FOLDED_RMSD_A = 1.5
#: Transition counting (hysteresis): a replica is committed to the folded state when its RMSD
#: drops below ``FOLDED_CORE_A`` and to the unfolded state when it rises above ``UNFOLDED_CORE_A``;
#: a folding (unfolding) transition is a change of committed state unfolded → folded (→ unfolded).
FOLDED_CORE_A = 1.0
UNFOLDED_CORE_A = 3.0

#: Data temperature (K) of the embedded reference.
TEMPERATURE_K = 350.0
#: The Gō model of the embedded reference (docs/data.md, "The embedded reference").
PARAMETERS = GoParameters(epsilon=0.53, misfolded_register=10, epsilon_misfolded=0.48, k_dihedral_1=1.8,
                          k_dihedral_3=0.6)
EPSILON = PARAMETERS.epsilon
#: Mass of every CG bead (amu): the Cα atom's own mass, as in Cα topologies written from an all-atom
#: structure. The fine model's beads of each residue are scaled so that they add up to it. Masses do not
#: change the equilibrium distribution or the forces, only the time scale (time runs as sqrt(mass)):
#: beads ~10x lighter than their residues cross the same landscape ~3x sooner, and a CG model simulated
#: with the dataset's masses has the reference's time scale.
CG_BEAD_MASS_AMU = 12.011

#: Run sizes. ``default`` is the embedded reference; ``tiny`` takes seconds (tests of other stages).
SIZES: dict[str, dict[str, Any]] = {
    "default": {"n_replicas": 48, "n_steps": 150_000, "save_every": 250, "unfold_steps": 2_500,
                "equilibration_steps": 25_000},
    "tiny": {"n_replicas": 8, "n_steps": 400, "save_every": 20, "unfold_steps": 1_000, "equilibration_steps": 0},
}
DT_PS = 0.004
#: Langevin friction of the reference runs (1/ps). The kinetics of this synthetic reference carry no
#: physical meaning; a low friction makes transitions come sooner per simulated ps.
FRICTION_PER_PS = 0.2
UNFOLD_TEMPERATURE_K = 600.0
#: Recommended reference TICA lag (frames of the default size) for this dataset.
TICA_LAG_FRAMES = 5
#: Envelope for the engine's bonded-distance blow-up guard. None: the stiff harmonic Gō bonds cannot
#: stretch far, the engine's non-finite check stays on, and the envelope check costs ~30% per step.
MAX_BOND_A: float | None = None


def count_transitions(rmsd: np.ndarray, folded_core: float = FOLDED_CORE_A,
                      unfolded_core: float = UNFOLDED_CORE_A) -> tuple[int, int]:
    """(folding, unfolding) transitions in one RMSD time series, with two-threshold hysteresis
    (:func:`raycg.cv.transitions.count_two_state_transitions` with the folded core as the low core)."""
    return count_two_state_transitions(rmsd, folded_core, unfolded_core)


def summarize_rmsd(rmsd_per_traj: list[np.ndarray], start_kind: np.ndarray | None = None,
                   rmsd_misfolded: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Folded (and misfolded) population and transition counts of per-trajectory Cα-RMSD series (Å).

    ``start_kind``: per trajectory "native", "misfolded" or "unfolded" (populations per start kind);
    ``rmsd_misfolded``: RMSD to the misfolded structure (a frame is misfolded below FOLDED_RMSD_A to it
    and not folded).
    """
    all_r = np.concatenate(rmsd_per_traj) if rmsd_per_traj else np.zeros(0)
    counts = np.array([count_transitions(r) for r in rmsd_per_traj]).reshape(-1, 2)
    out: dict[str, Any] = {
        "folded_population": float(np.mean(all_r < FOLDED_RMSD_A)) if all_r.size else float("nan"),
        "n_folding": int(counts[:, 0].sum()),
        "n_unfolding": int(counts[:, 1].sum()),
        "rmsd_threshold_A": FOLDED_RMSD_A,
        "transition_thresholds_A": [FOLDED_CORE_A, UNFOLDED_CORE_A],
        "rmsd_definition": "Calpha RMSD to the native Calpha trace after optimal rotation (no reflection)",
        "transition_definition": (f"hysteresis: committed folded below {FOLDED_CORE_A} A, unfolded above "
                                  f"{UNFOLDED_CORE_A} A; a transition is a change of committed state"),
        "median_rmsd_A": float(np.median(all_r)) if all_r.size else float("nan"),
    }
    if rmsd_per_traj:
        out["transitions_per_trajectory"] = round(float(counts.sum()) / len(rmsd_per_traj), 3)
    if rmsd_misfolded:
        mis = np.concatenate(rmsd_misfolded)
        out["misfolded_population"] = float(np.mean((mis < FOLDED_RMSD_A) & (all_r >= FOLDED_RMSD_A)))
    if start_kind is not None and len(rmsd_per_traj):
        kinds = np.asarray(start_kind)
        for name in ("native", "misfolded", "unfolded"):
            parts = [r for r, k in zip(rmsd_per_traj, kinds) if k == name]
            if parts:
                out[f"folded_population_{name}_started"] = float(np.mean(np.concatenate(parts) < FOLDED_RMSD_A))
    return out


def _resolve_size(size: str, **overrides: Any) -> dict[str, Any]:
    if size not in SIZES:
        raise InputError(f"unknown synth size {size!r}; use one of {sorted(SIZES)}")
    cfg = dict(SIZES[size])
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in cfg:
            raise InputError(f"unknown run setting {key!r}; use one of {sorted(cfg)}")
        if int(value) < (0 if key == "equilibration_steps" else 1):
            raise InputError(f"{key} must be a positive integer, got {value}")
        cfg[key] = int(value)
    if cfg["n_replicas"] < 3:
        raise InputError(f"n_replicas must be at least 3 (native, misfolded and unfolded starts), got "
                         f"{cfg['n_replicas']}")
    if cfg["n_steps"] < cfg["save_every"]:
        raise InputError(f"n_steps ({cfg['n_steps']}) must be at least save_every ({cfg['save_every']})")
    return cfg


def recipe(seed: int = 0, size: str = "default", temperature_K: float = TEMPERATURE_K,
           epsilon: float = EPSILON, **overrides: Any) -> dict[str, Any]:
    """Everything that determines a generated dataset (with its hash under ``"hash"``)."""
    run = _resolve_size(size, **overrides)
    out = {
        "generator": GENERATOR, "generator_version": GENERATOR_VERSION, "seed": int(seed), "size": size,
        "run": run, "temperature_K": float(temperature_K), "dt_ps": DT_PS, "friction_per_ps": FRICTION_PER_PS,
        "cg_bead_mass_amu": CG_BEAD_MASS_AMU, "unfold_temperature_K": UNFOLD_TEMPERATURE_K,
        "go_parameters": replace(PARAMETERS, epsilon=float(epsilon)).as_dict(),
        "resolution": {"coords_A": COORD_RESOLUTION_A, "forces_kcal_per_mol_A": FORCE_RESOLUTION},
    }
    out["hash"] = "sha256:" + hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()
    return out


def make_embedded_reference(out_dir: str | os.PathLike, seed: int = 0, n_replicas: int | None = None, *,
                            size: str = "default", n_steps: int | None = None, save_every: int | None = None,
                            unfold_steps: int | None = None, equilibration_steps: int | None = None,
                            temperature_K: float = TEMPERATURE_K,
                            epsilon: float = EPSILON, overwrite: bool = False,
                            progress: bool = True) -> Path:
    """Simulate the Gō model of CLN025 and write the Cα-mapped dataset to ``out_dir`` (atomically).

    ``size``: ``"default"`` (the embedded reference) or ``"tiny"`` (a few seconds, for tests);
    ``n_replicas``, ``n_steps`` (saved production steps per replica), ``save_every``, ``unfold_steps``
    and ``equilibration_steps`` (run before the saved part, frames dropped) override the size's values.
    Returns the dataset path. Runs with one torch thread (the 19-bead system gains nothing from more,
    and a fixed thread count keeps floating-point reductions, hence the bytes, reproducible).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir} already exists", hint="choose another --out or pass --overwrite")
    if not (np.isfinite(temperature_K) and temperature_K > 0):
        raise InputError(f"temperature must be > 0 K, got {temperature_K}")
    if not (np.isfinite(epsilon) and epsilon >= 0):
        raise InputError(f"epsilon must be >= 0 kcal/mol, got {epsilon}")
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}")
    run = _resolve_size(size, n_replicas=n_replicas, n_steps=n_steps, save_every=save_every,
                        unfold_steps=unfold_steps, equilibration_steps=equilibration_steps)
    with _torch_threads(1):
        t0 = time.perf_counter()
        system = build_go_system(params=replace(PARAMETERS, epsilon=float(epsilon)))
        sim = _simulate(system, run, int(seed), float(temperature_K), progress)
        sim["simulation_time_s"] = round(time.perf_counter() - t0, 1)
        ds = _dataset(system, sim, run, int(seed), size, float(temperature_K), float(epsilon))
        _add_landscape(ds, size)
        ds.meta.provenance["summary"]["generation_time_s"] = round(time.perf_counter() - t0, 1)
    from raycg.data.format import save

    save(ds, out_dir, overwrite=overwrite)
    return out_dir


def _start_kinds(n: int) -> np.ndarray:
    """Per replica: the first third starts native, the second misfolded, the rest unfolded."""
    k = np.full(n, "unfolded", dtype=object)
    k[: n // 3] = "native"
    k[n // 3: 2 * (n // 3)] = "misfolded"
    return k


def _simulate(system, run: dict[str, Any], seed: int, temperature_K: float, progress: bool) -> dict[str, Any]:
    """Unfolded starts (hot, no wells), then the production run of all replicas; returns the raw result."""
    from raycg.sim import SimulationConfig, simulate

    r_total = run["n_replicas"]
    kinds = _start_kinds(r_total)
    masses = fine_masses(system)
    starts = np.broadcast_to(system.native.astype(np.float32), (r_total, system.n_beads, 3)).copy()
    starts[kinds == "misfolded"] = system.misfolded.astype(np.float32)
    unf = kinds == "unfolded"
    common = {"integrator": "baoab", "dt_ps": DT_PS, "friction_per_ps": FRICTION_PER_PS, "dtype": "float32",
              "device": "cpu", "blowup_max_bond_A": MAX_BOND_A}
    unfold_cfg = SimulationConfig(**common, temperature_K=UNFOLD_TEMPERATURE_K, n_steps=run["unfold_steps"],
                                  save_every=run["unfold_steps"], seed=2 * seed + 1)
    res_u = simulate(_Forces(GoPotential(system, contacts="repulsive")), masses, starts[unf], unfold_cfg,
                     bonds=system.bonds, progress=progress)
    if not res_u.alive.all():
        raise RuntimeError(f"Go model unfolding run blew up: {res_u.blown_up}")
    starts[unf] = res_u.final_positions.astype(np.float32)
    n_eq = run["equilibration_steps"]
    prod_cfg = SimulationConfig(**common, temperature_K=temperature_K, n_steps=n_eq + run["n_steps"],
                                save_every=run["save_every"], seed=2 * seed, chunk_frames=100)
    res = simulate(_Forces(GoPotential(system)), masses, starts, prod_cfg, bonds=system.bonds, progress=progress)
    return {"result": res, "kinds": kinds, "production": prod_cfg, "unfolding": unfold_cfg, "masses": masses}


class _Forces:
    """The Gō potential's analytic ``energy_and_forces`` as the engine's force source (not a module, so a
    compiled run compiles the analytic pass rather than an autograd of the energy)."""

    def __init__(self, potential: GoPotential):
        self.potential = potential.float()

    def energy_and_forces(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.potential.energy_and_forces(pos)


def _map_to_ca(system, sim: dict[str, Any], n_eq: int) -> dict[str, Any]:
    """Cα coordinates, Cα forces (fine model, float64, rounded), RMSDs and a force-noise estimate."""
    res = sim["result"]
    ca = system.ca_index
    force_model = GoPotential(system).double()
    res_of_bead = torch.as_tensor(system.bead_residues)
    out: dict[str, Any] = {"coords": [], "forces": [], "rmsd": [], "rmsd_mis": [], "lengths": [], "kin_t": [],
                           "kept": [], "noise_sq": 0.0, "total_sq": 0.0}
    first = int(np.sum(res.step <= n_eq))                              # equilibration frames dropped
    n_kept = np.maximum(res.n_frames_per_replica - first, 0)
    for r in range(res.positions.shape[0]):
        nfr = int(n_kept[r])
        out["kept"].append(nfr > 0)
        if nfr == 0:
            continue
        pos = res.positions[r, first:first + nfr].astype(np.float32)   # [T, 19, 3]
        with torch.no_grad():
            _, f = force_model.energy_and_forces(torch.as_tensor(pos, dtype=torch.float64))
        # noise estimate: Cα-only force minus the residue-summed (Cα + own side chain) force, whose
        # noise is small (DESIGN 11: ~2% of <F^2>) and whose mean equals the CG mean force
        f_res = torch.zeros((nfr, len(ca), 3), dtype=torch.float64).index_add_(1, res_of_bead, f)
        out["noise_sq"] += float(((f[:, ca] - f_res) ** 2).sum())
        out["total_sq"] += float((f[:, ca] ** 2).sum())
        xc = quantize(pos[:, ca], COORD_RESOLUTION_A)
        out["coords"].append(xc)
        out["forces"].append(quantize(f.numpy()[:, ca], FORCE_RESOLUTION))
        out["rmsd"].append(kabsch_rmsd(xc, system.native[ca]))
        out["rmsd_mis"].append(kabsch_rmsd(xc, system.misfolded[ca]))
        out["lengths"].append(nfr)
        out["kin_t"].append(res.kinetic_temperature[r, first:first + nfr])
    if not out["lengths"]:
        raise RuntimeError("every replica of the Go simulation blew up; nothing to write")
    return out


def _dataset(system, sim: dict[str, Any], run: dict[str, Any], seed: int, size: str, temperature_K: float,
             epsilon: float):
    """The CG dataset (in memory) with its metadata and the RMSD part of the summary."""
    from raycg.data.format import BeadInfo, CGDataset, DatasetMeta, MappingInfo, compute_content_hash

    n_eq = run["equilibration_steps"]
    m = _map_to_ca(system, sim, n_eq)
    res, kinds = sim["result"], sim["kinds"][np.asarray(m["kept"])]
    coords, forces = np.concatenate(m["coords"]), np.concatenate(m["forces"])
    summary = summarize_rmsd(m["rmsd"], kinds, m["rmsd_mis"])
    summary.update({
        "n_trajectories": len(m["lengths"]), "n_frames": int(coords.shape[0]),
        "trajectory_length_ps": float(run["n_steps"] * DT_PS),
        "equilibration_ps_dropped": float(n_eq * DT_PS),
        "n_blown_up": int(len(res.blown_up)),
        "mean_kinetic_temperature_K": float(np.nanmean(np.concatenate(m["kin_t"]))),
        "simulation_time_s": sim["simulation_time_s"],
        "replica_steps_per_s": round(float(res.steps_per_s) * res.positions.shape[0], 1),
        "force_noise_fraction_estimate": round(float(m["noise_sq"] / max(m["total_sq"], 1e-300)), 4),
    })
    ca = system.ca_index
    res_names = list(system.residue_names)           # YYDPETGTWY for the packaged CLN025
    type_names = sorted(set(res_names))
    beads = BeadInfo(
        names=["CA"] * len(ca), types=[type_names.index(n) for n in res_names], type_names=type_names,
        masses=[CG_BEAD_MASS_AMU] * len(ca), residue_names=res_names,
        residue_ids=list(range(1, len(ca) + 1)), chain_ids=["A"] * len(ca),
    )
    mapping = MappingInfo(
        kind="go-model-ca-slice", atoms_per_bead=[[int(i)] for i in ca], force_atoms_per_bead=[[int(i)] for i in ca],
        force_aggregation="slice (force on the Calpha bead only; side-chain bead forces are dropped)",
        fine_model="two-resolution Go model, 19 beads (see provenance.go_model)",
    )
    provenance = _provenance(system, sim, run, seed, size, temperature_K, epsilon, summary)
    meta = DatasetMeta(
        name=f"embedded-cln025-seed{seed}" + ("" if size == "default" else f"-{size}"),
        n_frames=int(coords.shape[0]), n_beads=len(ca), n_trajectories=len(m["lengths"]),
        temperature_K=temperature_K, dt_frame_ps=float(run["save_every"] * DT_PS), beads=beads,
        bonds=[(i, i + 1) for i in range(len(ca) - 1)], mapping=mapping, provenance=provenance,
    )
    offsets = np.concatenate([[0], np.cumsum(m["lengths"])]).astype(np.int64)
    ds = CGDataset(coords=coords, forces=forces, traj_offsets=offsets, meta=meta)
    ds.meta.content_hash = compute_content_hash(ds)
    return ds


def _provenance(system, sim: dict[str, Any], run: dict[str, Any], seed: int, size: str, temperature_K: float,
                epsilon: float, summary: dict[str, Any]) -> dict[str, Any]:
    from raycg.utils.provenance import provenance as run_record

    kinds = sim["kinds"]
    out = {
        "generator": GENERATOR, "generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
        "recipe": recipe(seed, size, temperature_K, epsilon, **run),
        "go_model": go_description(system, temperature_K),
        "simulation": {
            "engine": "raycg.sim.simulate (BAOAB)", "production": sim["production"].model_dump(mode="json"),
            "unfolding": sim["unfolding"].model_dump(mode="json") | {"contacts": "repulsive (wells removed)"},
            "starts": {k: int(np.sum(kinds == k)) for k in ("native", "misfolded", "unfolded")},
            "trajectory_order": "native-started replicas first, then misfolded-started, then unfolded-started",
            "fine_masses_amu": [round(float(x), 4) for x in sim["masses"]],
        },
        "cg_masses": (f"{CG_BEAD_MASS_AMU} amu per bead (the Calpha atom's mass); the Go model's beads of each "
                      "residue are scaled to add up to it"),
        "summary": summary,
        "note": "synthetic embedded reference for quickstarts and tests; real studies use all-atom data",
    }
    out["run"] = run_record(out["recipe"])     # versions, git commit, host, time
    return out


def _add_landscape(ds, size: str) -> None:
    """TICA basins, barriers and timescales of the dataset, into its provenance summary (default size:
    the recommended lag; smaller runs: a lag that fits their trajectories)."""
    from raycg.synth.landscape import landscape_summary

    shortest = int(np.diff(ds.traj_offsets).min())
    lag = min(TICA_LAG_FRAMES, max(1, shortest // 4))
    try:
        land = landscape_summary(ds, lag)
    except Exception as exc:  # noqa: BLE001 - a tiny test set may not support a TICA; the data stay usable
        land = {"error": f"{type(exc).__name__}: {exc}"}
    ds.meta.provenance["summary"]["landscape"] = land


def fine_masses(system) -> np.ndarray:
    """Masses (amu) the Gō beads are simulated with: each residue's beads scaled to add up to CG_BEAD_MASS_AMU
    (the Cα bead and side-chain bead keep their atoms' mass ratio)."""
    res = np.asarray(system.bead_residues)
    total = np.bincount(res, weights=system.masses)
    return system.masses * CG_BEAD_MASS_AMU / total[res]


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run with ``n`` torch threads, restoring the previous count afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where generated data is cached: ``cache_dir``, else ``$RAYCG_CACHE``, else ``~/.cache/raycg``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("RAYCG_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "raycg"


def embedded_dataset(cache_dir: str | os.PathLike | None = None, *, progress: bool = True) -> Path:
    """Path of the embedded dataset (seed 0), written once into the cache from the packaged resource.

    Nothing is simulated: :func:`raycg.synth.resource.unpack_resource` writes the arrays the package ships
    (about a second) and checks their content hash against the recorded one. Safe for concurrent callers
    in several processes: writing runs under an exclusive lock (``fcntl.flock`` on a lock file next to
    it) and the dataset directory appears atomically. A cached dataset with another content hash (an
    older version, or damaged metadata) is replaced. ``progress`` is accepted for compatibility.
    """
    from raycg.synth import resource

    root = cache_root(cache_dir)
    path = root / CACHE_NAME
    want = resource.resource_meta()["content_hash"]
    if _cached_content_hash(path) == want:
        return path
    root.mkdir(parents=True, exist_ok=True)
    lock = root / f".{CACHE_NAME}.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            if _cached_content_hash(path) != want:   # absent, or another content: (re)write
                resource.unpack_resource(path, overwrite=path.exists())
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return path


def _cached_content_hash(path: Path) -> str | None:
    """The content hash stored in a cached dataset's meta.json (None when absent or unreadable)."""
    try:
        return json.loads((path / "meta.json").read_text())["content_hash"] or None
    except (OSError, ValueError, KeyError, TypeError):
        return None
