"""Map finished (or partial) all-atom replicas to a CG dataset with the constraint-aware force map."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from raycg.allatom.config import AllAtomConfig
from raycg.allatom.replica import read_progress
from raycg.data.format import DatasetMeta
from raycg.errors import InputError


def _segments(rdir: Path, segments_done: int) -> list[Path]:
    return [rdir / f"seg_{k:05d}.npz" for k in range(segments_done)]


def assemble_dataset(gen_dir: str | Path, out: str | Path, *, overwrite: bool = False, min_frames: int = 2,
                     progress: bool = True) -> Path:
    """Build a CG dataset (Cα map, forces summed over each Cα and its constrained hydrogens) from the
    complete segments of every replica in ``gen_dir``; replicas with fewer than ``min_frames`` are skipped.
    """
    import mdtraj

    from raycg.data.mapping import ca_map
    from raycg.data.streaming import write_dataset_streaming

    gen_dir = Path(gen_dir)
    run_file = gen_dir / "run.json"
    if not run_file.is_file():
        raise InputError(f"{run_file} is missing", hint="is this a 'raycg data generate-aa' output directory?")
    run = json.loads(run_file.read_text())
    cfg = AllAtomConfig.model_validate(run["config"])
    top = mdtraj.load_topology(str(gen_dir / "solute.pdb"))
    pairs = np.array([(int(h), int(x)) for h, xs in run["constraints"].items() for x in xs], np.int64).reshape(-1, 2)
    cg = ca_map(top, constraints=pairs)
    replicas: list[tuple[Path, int]] = []
    for rdir in sorted(gen_dir.glob("replica_*")):
        prog = read_progress(rdir)
        if not prog:
            continue
        segs = _segments(rdir, int(prog["segments_done"]))
        n = 0
        for s in segs:
            with np.load(s) as z:
                n += len(z["step"])
        if n >= min_frames:
            replicas.append((rdir, n))
    if not replicas:
        raise InputError(f"no replica in {gen_dir} has {min_frames}+ saved frames yet",
                         hint="let 'raycg data generate-aa' run longer")
    lengths = np.array([n for _, n in replicas], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for rdir, _ in replicas:
            prog = read_progress(rdir)
            for s in _segments(rdir, int(prog["segments_done"])):
                with np.load(s) as z:
                    yield cg.map_coords(z["positions"]), cg.map_forces(z["forces"])

    import openmm

    provenance: dict[str, Any] = {
        "source": "raycg data generate-aa",
        "forcefield": cfg.forcefield, "solvent": cfg.solvent, "temperature_K": cfg.temperature_K,
        "timestep_fs": cfg.dt_fs, "hmr": cfg.hmr, "friction_per_ps": cfg.friction_per_ps,
        "platforms": sorted({read_progress(r).get("platform", "?") for r, _ in replicas}),
        "openmm_version": openmm.__version__, "pdb": run["pdb"], "pdb_sha256": run["pdb_sha256"],
        "replicas": [r.name for r, _ in replicas], "config": run["config"],
    }
    meta = DatasetMeta(
        name=f"allatom-{Path(run['pdb']).stem}", n_frames=int(offsets[-1]), n_beads=cg.n_beads,
        n_trajectories=len(replicas), temperature_K=cfg.temperature_K, dt_frame_ps=cfg.save_every_ps,
        beads=cg.beads, bonds=[tuple(b) for b in cg.bonds], mapping=cg.info, has_forces=True,
        provenance=provenance,
    )
    path, _ = write_dataset_streaming(out, meta, offsets, chunks(), overwrite=overwrite, progress=progress,
                                      desc="map to CG")
    return Path(path)
