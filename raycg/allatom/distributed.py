"""Distribute all-atom OpenMM replicas (``raycg.allatom``) as Ray tasks.

Each replica is one task that asks for a GPU when the cluster has any (CUDA/OpenCL platform) and
CPUs otherwise. Tasks write their segments and checkpoints straight into the output directory,
which must be on storage every node sees (NFS/EFS, or one machine); a task retried after a node is
lost (``max_retries``) resumes from its replica's last checkpoint. Replicas beyond what the
cluster runs at once simply queue. Progress (ns done, ns/day per replica, ETA) is printed by the
driver and exported to the Ray dashboard as ``raycg_allatom_*`` metrics.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from raycg.allatom import AllAtomConfig, assemble_dataset, read_progress, replica_dir, write_run_manifest
from raycg.errors import InputError


def _replica_task(pdb_path: str, cfg_json: dict[str, Any], index: int, out_dir: str, platform: str,
                  threads: int) -> dict[str, Any]:
    from ray.util.metrics import Gauge

    from raycg.allatom import run_replica

    cfg = AllAtomConfig.model_validate(dict(cfg_json, platform=platform, cpu_threads=threads))
    tags = {"replica": str(index)}
    g_ns = Gauge("raycg_allatom_ns_done", "ns simulated by an all-atom replica", tag_keys=("replica",))
    g_rate = Gauge("raycg_allatom_ns_per_day", "all-atom replica speed (ns/day)", tag_keys=("replica",))
    g_eta = Gauge("raycg_allatom_eta_seconds", "all-atom replica ETA (s)", tag_keys=("replica",))

    def report(p: dict[str, Any]) -> None:
        g_ns.set(p["ns_done"], tags=tags)
        if p.get("ns_per_day"):
            g_rate.set(p["ns_per_day"], tags=tags)
        if p.get("eta_s") is not None:
            g_eta.set(p["eta_s"], tags=tags)

    return run_replica(pdb_path, cfg, index, out_dir, progress=report)


def _format_progress(out_dir: Path, cfg: AllAtomConfig, t0: float) -> str:
    done_ns, rates, finished = 0.0, [], 0
    for i in range(cfg.n_replicas):
        p = read_progress(replica_dir(out_dir, i))
        if p:
            done_ns += p["ns_done"]
            finished += bool(p.get("finished"))
            if p.get("ns_per_day"):
                rates.append(p["ns_per_day"])
    total = cfg.n_replicas * cfg.duration_ns
    elapsed = time.time() - t0
    rate_all = done_ns / elapsed * 86400 if elapsed > 0 else 0.0
    eta = (total - done_ns) / rate_all * 86400 if rate_all > 0 else float("inf")
    per = f"{sum(rates) / len(rates):.1f} ns/day/replica" if rates else "-"
    return (f"all-atom: {done_ns:.3f}/{total:.3f} ns, {finished}/{cfg.n_replicas} replicas done, {per}, "
            f"ETA {eta:.0f}s")


def generate_allatom(pdb_path: str | Path, out_dir: str | Path, cfg: AllAtomConfig, *, address: str | None = None,
                     cpus_per_replica: int = 1, use_gpu: str = "auto", dataset_out: str | Path | None = None,
                     max_retries: int = 3, poll_s: float = 10.0, verbose: bool = True) -> Path | None:
    """Run every replica of ``cfg`` as a Ray task, then map them to a CG dataset.

    Returns the dataset path (``dataset_out`` or ``OUT/cg``), or None when ``dataset_out=False``.
    """
    import ray

    pdb_path, out_dir = Path(pdb_path).resolve(), Path(out_dir).resolve()
    write_run_manifest(out_dir, pdb_path, cfg)  # also validates the PDB against the force field
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address} if address else {}
        if not address and not os.environ.get("RAY_ADDRESS"):
            kwargs.update(num_cpus=os.cpu_count(), include_dashboard=False)
        ray.init(logging_level="ERROR", **kwargs)
        started_here = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        gpu = (use_gpu == "yes") or (use_gpu == "auto" and gpus > 0)
        if use_gpu == "yes" and gpus == 0:
            raise InputError("use_gpu=yes but the cluster has no GPU and cannot get one",
                             hint="use --gpu auto or no, or add GPU workers")
        if cfg.platform in ("CUDA", "OpenCL") and gpus == 0:
            raise InputError(f"platform {cfg.platform} needs a GPU but the cluster has none and cannot get one",
                             where="platform", hint="use platform auto or CPU, or add GPU workers")
        platform = cfg.platform if cfg.platform != "auto" else ("CUDA" if gpu else "CPU")
        task = ray.remote(_replica_task).options(
            num_cpus=cpus_per_replica, num_gpus=1 if gpu else 0, max_retries=max_retries,
            name="raycg-allatom-replica",
        )
        pending = {}
        for i in range(cfg.n_replicas):
            p = read_progress(replica_dir(out_dir, i))
            if p and p.get("finished"):
                continue
            ref = task.remote(str(pdb_path), cfg.model_dump(mode="json"), i, str(out_dir), platform, cpus_per_replica)
            pending[ref] = i
        t0, last = time.time(), 0.0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
            for ref in ready:
                ray.get(ref)  # re-raises a replica's error (after its retries)
                pending.pop(ref)
            if verbose and (time.time() - last >= poll_s or not pending):
                last = time.time()
                print(_format_progress(out_dir, cfg, t0), flush=True)
    finally:
        if started_here:
            ray.shutdown()
    if dataset_out is False:
        return None
    return assemble_dataset(out_dir, dataset_out or out_dir / "cg", overwrite=True, progress=verbose)
