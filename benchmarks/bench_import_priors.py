"""Benchmark: import a CLN025-sized torchmd-cg dataset (1.8M frames × 10 Cα beads) and fit its priors.

Generates synthetic torchmd-cg arrays (coords [N,10,3] Å, forces kcal/mol/Å, embeddings) into a
temporary directory: exact Boltzmann samples at 350 K of a chain with harmonic bonds (k 60 kcal/mol/Å²,
r0 3.8 Å) and harmonic angles (k 20 kcal/mol/rad², θ0 1.9 rad), free dihedrals, with the exact forces
plus Gaussian noise. A child process then runs ``import_torchmd_cg`` (streamed, validated, hashed) and
``raycg.priors.fit_priors`` on the result, and reports wall time and peak memory (``VmHWM`` of the child,
and the tracemalloc peak of Python/NumPy allocations). Prints one JSON object.

Targets (issue 2): total < 60 s, peak RSS < 2 × dataset bytes (coords + forces).

    python benchmarks/bench_import_priors.py [--frames 1800000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KB = 0.0019872041  # kcal/mol/K (raycg.units.KB_KCAL_PER_MOL_K; kept local so generation needs no raycg)
SEQ = "YYDPETGTWY"


def _sample(rng, n, mean, sd, jac, lo, hi):
    """n samples of jac(x)·N(mean, sd) on (lo, hi) by rejection (jac ≤ 1 on the proposal's range)."""
    out = np.empty(0)
    while out.size < n:
        x = rng.normal(mean, sd, 2 * n)
        x = x[(x > lo) & (x < hi)]
        out = np.concatenate([out, x[rng.random(x.size) < jac(x)]])
    return out[:n]


def chain_chunk(rng, n, b=10, t=350.0, kb=60.0, r0=3.8, ka=20.0, th0=1.9, noise=2.0):
    """Exact samples (Å) and forces (kcal/mol/Å) of the bond+angle chain, plus force noise."""
    kt = KB * t
    rmax = r0 + 8 * np.sqrt(kt / kb)
    r = _sample(rng, n * (b - 1), r0, np.sqrt(kt / kb), lambda x: (x / rmax) ** 2, 0, np.inf).reshape(n, b - 1)
    th = _sample(rng, n * (b - 2), th0, np.sqrt(kt / ka), np.sin, 0, np.pi).reshape(n, b - 2)
    phi = rng.uniform(-np.pi, np.pi, (n, b - 3))
    x = np.zeros((n, b, 3))
    x[:, 1, 0] = r[:, 0]
    x[:, 2] = x[:, 1] + r[:, 1:2] * np.stack([-np.cos(th[:, 0]), np.sin(th[:, 0]), np.zeros(n)], 1)
    for i in range(3, b):  # NeRF: place bead i from i-3, i-2, i-1
        a, bb, c = x[:, i - 3], x[:, i - 2], x[:, i - 1]
        bc = c - bb
        bc /= np.linalg.norm(bc, axis=1, keepdims=True)
        nrm = np.cross(bb - a, bc)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        m = np.stack([bc, np.cross(nrm, bc), nrm], axis=2)
        t_, p_ = th[:, i - 2], phi[:, i - 3]
        d = np.stack([-np.cos(t_), np.sin(t_) * np.cos(p_), np.sin(t_) * np.sin(p_)], 1) * r[:, i - 1 : i]
        x[:, i] = c + np.einsum("fij,fj->fi", m, d)
    f = np.zeros_like(x)
    bv = x[:, 1:] - x[:, :-1]
    bl = np.linalg.norm(bv, axis=2, keepdims=True)
    fb = -kb * (bl - r0) * bv / bl
    f[:, 1:] += fb
    f[:, :-1] -= fb
    u, v = x[:, :-2] - x[:, 1:-1], x[:, 2:] - x[:, 1:-1]
    lu, lv = np.linalg.norm(u, axis=2, keepdims=True), np.linalg.norm(v, axis=2, keepdims=True)
    uh, vh = u / lu, v / lv
    cos = np.clip(np.sum(uh * vh, axis=2, keepdims=True), -1, 1)
    theta, sin = np.arccos(cos), np.sqrt(1 - cos**2)
    dudth = ka * (theta - th0)
    gi = -(vh - cos * uh) / (lu * sin)  # dθ/dr_i
    gk = -(uh - cos * vh) / (lv * sin)  # dθ/dr_k
    f[:, :-2] -= dudth * gi
    f[:, 2:] -= dudth * gk
    f[:, 1:-1] += dudth * (gi + gk)
    f += rng.normal(0, noise, f.shape)
    x += rng.normal(0, 10.0, (n, 1, 3))
    return x.astype(np.float32), f.astype(np.float32)


def generate(d: Path, n_frames: int, chunk: int = 100_000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    c = np.lib.format.open_memmap(d / "coords.npy", mode="w+", dtype=np.float32, shape=(n_frames, 10, 3))
    f = np.lib.format.open_memmap(d / "forces.npy", mode="w+", dtype=np.float32, shape=(n_frames, 10, 3))
    for s in range(0, n_frames, chunk):
        e = min(n_frames, s + chunk)
        c[s:e], f[s:e] = chain_chunk(rng, e - s)
    c.flush()
    f.flush()
    del c, f
    np.save(d / "embeddings.npy", np.array([4, 4, 5, 8, 6, 13, 2, 13, 7, 4]))


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def _reset_peak() -> bool:
    """Reset VmHWM (Linux: write 5 to /proc/self/clear_refs) so the next phase's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_parts() -> dict:
    return {k: _vm(k) for k in ("VmRSS", "RssAnon", "RssFile")}


def child(d: Path, frames_per_traj: int) -> dict:
    import tracemalloc

    tracemalloc.start()
    from raycg.data import load
    from raycg.data.importers import import_torchmd_cg

    try:
        from raycg.priors import fit_priors
    except ImportError as exc:  # priors not written yet: benchmark the import alone
        fit_priors, why = None, str(exc)
    base_rss = _vm("VmRSS")
    t0 = time.perf_counter()
    out, rep = import_torchmd_cg(str(d / "coords.npy"), str(d / "forces.npy"), d / "dataset",
                                 embeddings=str(d / "embeddings.npy"), sequence=SEQ,
                                 frames_per_traj=frames_per_traj, progress=False)
    t_import = time.perf_counter() - t0
    import_peak = tracemalloc.get_traced_memory()[1]
    res = {"import_s": round(t_import, 2), "validation": dict(rep.stats),
           "tracemalloc_peak_import_bytes": import_peak, "peak_rss_import_bytes": _vm("VmHWM")}
    del rep
    res["peak_reset"] = _reset_peak()
    if fit_priors is not None:
        tracemalloc.reset_peak()
        t1 = time.perf_counter()
        priors = fit_priors(load(out))
        res["priors_s"] = round(time.perf_counter() - t1, 2)
        res["tracemalloc_peak_priors_bytes"] = tracemalloc.get_traced_memory()[1]
        res["peak_rss_priors_bytes"] = _vm("VmHWM")
        res["rss_after_priors"] = _rss_parts()
        try:
            bond = priors.summary_lines()[:3]
        except Exception:  # summary format belongs to raycg.priors; informational only
            bond = []
        res["priors_summary_head"] = bond
    else:
        res["priors"] = f"skipped: raycg.priors not importable ({why})"
    res["peak_rss_bytes"] = max(res["peak_rss_import_bytes"], _vm("VmHWM"))
    res["baseline_rss_bytes"] = base_rss
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_800_000)
    ap.add_argument("--frames-per-traj", type=int, default=500)
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (default: a temp dir, removed)")
    ap.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.frames_per_traj)))
        return 0
    d = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="raycg-bench-import-"))
    d.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        kept = d / "coords.npy"
        if not (args.keep and kept.is_file() and np.load(kept, mmap_mode="r").shape[0] == args.frames):
            generate(d, args.frames)  # a kept directory with the right size is reused
        t_gen = time.perf_counter() - t0
        shutil.rmtree(d / "dataset", ignore_errors=True)
        proc = subprocess.run([sys.executable, __file__, "--child", str(d), "--frames-per-traj",
                               str(args.frames_per_traj)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        dataset_bytes = 2 * args.frames * 10 * 3 * 4
        total = res["import_s"] + res.get("priors_s", 0.0)
        report = {
            "benchmark": "import_priors", "frames": args.frames, "beads": 10,
            "trajectories": args.frames // args.frames_per_traj, "dataset_bytes": dataset_bytes,
            "generate_s": round(t_gen, 2), **res, "total_s": round(total, 2),
            "peak_rss_over_dataset": round(res["peak_rss_bytes"] / dataset_bytes, 3),
            "peak_rss_above_baseline_over_dataset":
                round((res["peak_rss_bytes"] - res["baseline_rss_bytes"]) / dataset_bytes, 3),
            "target": {"total_s": 60, "peak_rss_over_dataset": 2.0},
            "meets_target": bool(total < 60 and res["peak_rss_bytes"] < 2 * dataset_bytes),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(report, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
