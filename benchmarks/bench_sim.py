"""Simulation throughput: raycg.sim vs a straightforward torch_geometric SchNet loop.

Replica-steps/s and bead-steps/s against the number of replicas for a CLN025-like 10-bead chain:
  (a) priors alone (raycg.priors PriorEnergy with known CLN025-like parameters, see make_priors),
  (b) raycg's CGSchNet at its default size (hidden/filters 128, 3 interactions, 50 basis functions)
      plus the same priors, through ``raycg.sim.simulate``,
  (ref) the same BAOAB step written plainly around torch_geometric.nn.models.SchNet (hidden 128,
      filters 128, 3 interactions, 50 gaussians, cutoff 12 Å like CGSchNet's) plus the same priors,
      with a plain-torch all-pairs interaction graph (radius_graph needs pyg-lib, absent here)
      and forces by autograd.
Both sides: float32, one force evaluation per step, same replicas, same start structures. Time
per cell is bounded (a warm-up step, then steps until ``--seconds``). Prints one JSON object;
``ratio_vs_reference`` = raycg CGSchNet / reference replica-steps/s.

    python benchmarks/bench_sim.py [--quick] [--device cuda] [--replicas 1 10 100] [--seconds 3] [--compile R ...]
                                   [--no-compile]
    python benchmarks/bench_sim.py --scope [--replicas 32 128] [--rounds 3]

``--scope`` times only the two compile scopes of the device policy side by side (raycg.device:
``sim_compile_scope``): the whole integrator step as one graph ("step", the CPU choice) against the
network pass and the prior compiled separately with the integrator eager ("forces"), for the
quickstart's model size (hidden/filters 32, 2 interactions, 16 basis functions), rounds alternating.

The machine is shared: the JSON records the load average; rates are the best of ``--rounds``, and
each rate also per CPU second of this process (``*_per_cpu_s``, ``ratio_per_cpu_second``: less
sensitive to other processes). ``--device cuda`` runs both sides on the GPU (benchmarks/gpu_check.py
runs the GPU tables, captured steps included, in one go).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import time

import numpy as np
import torch

N_BEADS = 10
MASS = 12.011
DT, GAMMA, TEMP = 0.002, 1.0, 300.0


def native_ca() -> np.ndarray:
    """Cα trace (Å, centred) of raycg's packaged CLN025 PDB (first model), read without mdtraj (the
    GPU machines' image has none; raycg._testing.datasets.native_ca gives the same to ~1e-6 Å)."""
    from importlib import resources

    text = resources.files("raycg").joinpath("resources", "cln025_allatom.pdb").read_text()
    ca = []
    for line in text.splitlines():
        if line.startswith("ENDMDL"):
            break
        if line.startswith(("ATOM", "HETATM")) and line[12:16].strip() == "CA":
            ca.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
    x = np.asarray(ca, dtype=np.float64)
    return x - x.mean(0)


def start_positions(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return native_ca()[None] + rng.normal(scale=0.3, size=(n, N_BEADS, 3))


def make_priors():
    """A CLN025-like prior with known parameters (raycg.priors.PriorEnergy), built around the native Cα trace.

    Bonds ½·100(r−3.8)², angles ½·20(θ−θ_native)², dihedrals −cos(φ−φ_native), repulsion (4 Å/r)⁶ for
    pairs ≥ 3 bonds apart. Returns (module, bead types).
    """
    from raycg.priors import PriorEnergy
    from raycg.priors import geometry as G
    from raycg.priors.terms import FourierDihedral, HarmonicAngle, HarmonicBond, Repulsion

    b = N_BEADS
    x = native_ca()[None]
    bonds = np.stack([np.arange(b - 1), np.arange(1, b)], 1)
    angles = np.stack([np.arange(b - 2), np.arange(1, b - 1), np.arange(2, b)], 1)
    dihedrals = np.stack([np.arange(b - 3), np.arange(1, b - 2), np.arange(2, b - 1), np.arange(3, b)], 1)
    pairs = np.array([(i, j) for i in range(b) for j in range(i + 3, b)])
    phi0 = G.numpy_features(G.dihedrals, x, dihedrals, 4)[0]
    order = 3
    cos = np.zeros((len(dihedrals), order))
    sin = np.zeros((len(dihedrals), order))
    cos[:, 0], sin[:, 0] = -np.cos(phi0), -np.sin(phi0)  # −cos(φ − φ0)
    theta0 = G.numpy_features(G.angles, x, angles, 3)[0]
    prior = PriorEnergy(b, [HarmonicBond(bonds, np.full(b - 1, 100.0), np.full(b - 1, 3.8)),
                            HarmonicAngle(angles, np.full(b - 2, 20.0), theta0),
                            FourierDihedral(dihedrals, cos, sin),
                            Repulsion(pairs, np.full(len(pairs), 4.0))])
    types = np.array([["TYR", "ASP", "PRO", "GLU", "THR", "GLY", "TRP"].index(r) for r in
                      ("TYR", "TYR", "ASP", "PRO", "GLU", "THR", "GLY", "THR", "TRP", "TYR")])
    return prior, types


def make_raycg_model(prior, types):
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel

    torch.manual_seed(0)
    cfg = CGSchNetConfig()  # default size
    net = CGSchNet(cfg)
    # small output weights: the untrained network must not blow the chain apart during the benchmark
    with torch.no_grad():
        net.output[-1].weight.mul_(1e-3)
    return EnergyModel(types, copy.deepcopy(prior), net).eval(), cfg.model_dump()


class ReferenceModel(torch.nn.Module):
    """Prior + torch_geometric SchNet on an all-pairs graph (energies [R])."""

    def __init__(self, prior, types, cutoff: float = 12.0):
        super().__init__()
        from torch_geometric.nn.models import SchNet

        self.prior = prior
        self.net = SchNet(hidden_channels=128, num_filters=128, num_interactions=3, num_gaussians=50,
                          cutoff=cutoff, interaction_graph=self.graph)
        with torch.no_grad():
            self.net.lin2.weight.mul_(1e-3)
        self.register_buffer("types", torch.as_tensor(np.asarray(types), dtype=torch.long) + 1)
        self._edges: dict[int, torch.Tensor] = {}

    def all_pairs(self, r: int, device) -> torch.Tensor:
        if r not in self._edges:
            i, j = torch.meshgrid(torch.arange(N_BEADS), torch.arange(N_BEADS), indexing="ij")
            keep = i != j
            base = torch.stack([i[keep], j[keep]])                       # [2, B(B-1)]
            off = (torch.arange(r) * N_BEADS).repeat_interleave(base.shape[1])
            self._edges[r] = (base.repeat(1, r) + off).to(device)
        return self._edges[r]

    def graph(self, pos, batch):
        edge_index = self._edge_index
        row, col = edge_index
        return edge_index, (pos[row] - pos[col]).norm(dim=-1)

    def forward(self, x):
        r = x.shape[0]
        self._edge_index = self.all_pairs(r, x.device)
        z = self.types.repeat(r)
        batch = torch.arange(r, device=x.device).repeat_interleave(N_BEADS)
        e = self.net(z, x.reshape(-1, 3), batch).reshape(r)
        return e + self.prior(x)


def reference_rate(model, x0: np.ndarray, seconds: float, device: str, rounds: int = 2,
                   cpu: dict | None = None) -> tuple[float, int]:
    """Plain BAOAB loop (autograd forces); returns (best steps/s over ``rounds``, steps timed).
    ``cpu``: filled with the best steps per CPU second of this process (robust to other load)."""
    from raycg import units as U

    x = torch.as_tensor(x0, dtype=torch.float32, device=device)
    m = torch.full((N_BEADS,), MASS, device=device)
    inv_m = (U.ACCEL_FACTOR_A_PER_PS2 / m)[None, :, None]
    kt = U.kbt(TEMP)
    c1 = math.exp(-GAMMA * DT)
    sig = math.sqrt(1 - c1 * c1) * torch.sqrt(kt * inv_m)
    v = torch.randn_like(x) * torch.sqrt(kt * inv_m)

    def forces(x):
        x = x.detach().requires_grad_(True)
        e = model(x)
        (g,) = torch.autograd.grad(e.sum(), x)
        return -g

    f = forces(x)

    def step(x, v, f):
        v = v + 0.5 * DT * inv_m * f
        x = x + 0.5 * DT * v
        v = c1 * v + sig * torch.randn_like(v)
        x = x + 0.5 * DT * v
        f = forces(x)
        v = v + 0.5 * DT * inv_m * f
        return x, v, f

    x, v, f = step(x, v, f)  # warm-up
    _sync(device)
    best, n_total = 0.0, 0
    for _ in range(rounds):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            x, v, f = step(x, v, f)
            n += 1
            _sync(device)
            if time.perf_counter() - t0 >= seconds and n >= 2:
                break
        best, n_total = max(best, n / (time.perf_counter() - t0)), n_total + n
        if cpu is not None:
            cpu["steps_per_cpu_s"] = max(cpu.get("steps_per_cpu_s", 0.0), n / max(time.process_time() - c0, 1e-9))
    assert torch.isfinite(x).all(), "reference blew up"
    return best, n_total


def raycg_rate(model, x0: np.ndarray, seconds: float, device: str, compile_step: bool = False,
               rounds: int = 2, cpu: dict | None = None, **extra) -> tuple[float, int, int]:
    """raycg.sim.simulate steps/s (best of ``rounds`` timed calls after a warm-up call that sizes them).

    Returns (steps/s, steps per timed call, blown-up replicas). The rate is the engine's own loop timer.
    ``cpu``: filled with the best steps per CPU second of this process (whole calls, set-up included).
    ``extra``: more SimulationConfig fields (e.g. ``capture=True``; given only when asked for, so the
    script also times older raycg versions).
    """
    from raycg.sim import SimulationConfig, simulate

    base = dict(dt_ps=DT, friction_per_ps=GAMMA, temperature_K=TEMP, device=device, compile=compile_step,
                blowup_max_bond_A=8.0, **extra)
    masses = np.full(N_BEADS, MASS)
    bonds = np.stack([np.arange(N_BEADS - 1), np.arange(1, N_BEADS)], 1)
    for _ in range(2 if compile_step else 1):  # compiled: the first call compiles, the second is warm
        warm = simulate(model, masses, x0, SimulationConfig(n_steps=4, save_every=4, **base), bonds=bonds,
                        progress=False)
    n = int(min(2000 if device == "cpu" else 20_000, max(2, seconds * warm.steps_per_s)))
    best, dead = 0.0, 0
    for _ in range(rounds):
        c0 = time.process_time()
        res = simulate(model, masses, x0, SimulationConfig(n_steps=n, save_every=n, **base), bonds=bonds,
                       progress=False)
        if cpu is not None:
            cpu["steps_per_cpu_s"] = max(cpu.get("steps_per_cpu_s", 0.0), n / max(time.process_time() - c0, 1e-9))
            cpu["info"] = res.info.get("forces", {})
        best, dead = max(best, res.steps_per_s), max(dead, int((~res.alive).sum()))
    return best, n, dead


def scope_compare(args) -> dict:
    """Compiled replica-steps/s with the whole step in one graph vs the forces compiled apart."""
    import dataclasses

    import raycg.device as rdev
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel

    prior, types = make_priors()
    torch.manual_seed(0)
    cfg = CGSchNetConfig(hidden_channels=32, num_filters=32, num_interactions=2, num_rbf=16)
    net = CGSchNet(cfg)
    with torch.no_grad():
        net.output[-1].weight.mul_(1e-3)
    model = EnergyModel(types, copy.deepcopy(prior), net).eval()
    policy = rdev.policy_for(args.device)
    rows = []
    for r in args.replicas or [32, 128]:
        x0, best = start_positions(r), {}
        for _ in range(args.rounds):
            for scope in ("step", "forces"):
                patched = dataclasses.replace(policy, sim_compile_scope=scope)
                rdev.CPU, rdev.CUDA = (patched, rdev.CUDA) if policy.kind == "cpu" else (rdev.CPU, patched)
                rate, n, _ = raycg_rate(model, x0, args.seconds or 3.0, args.device, compile_step=True, rounds=1)
                best[scope] = max(best.get(scope, 0.0), rate)
        rdev.CPU, rdev.CUDA = (policy, rdev.CUDA) if policy.kind == "cpu" else (rdev.CPU, policy)
        rows.append({"replicas": r, "ms_per_step_step_scope": 1000 / best["step"],
                     "ms_per_step_forces_scope": 1000 / best["forces"],
                     "speedup_step_vs_forces": best["step"] / best["forces"]})
        print(json.dumps({"progress": rows[-1]}), flush=True)
    return {"benchmark": "bench_sim --scope: compiled step vs compiled forces", "device": args.device,
            "policy_scope": policy.sim_compile_scope, "model_config": cfg.model_dump(), "rounds": args.rounds,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None, "rows": rows}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="replicas 1, 10, 100 and 1 s per cell")
    ap.add_argument("--replicas", type=int, nargs="+", help="replica counts (default 1 10 100 1000 4096)")
    ap.add_argument("--seconds", type=float, help="timed seconds per cell (default 3; quick 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch intra-op threads")
    ap.add_argument("--compile", type=int, nargs="*", metavar="R",
                    help="time raycg with SimulationConfig.compile=True only at these replica counts (default: every "
                         "CGSchNet row; long simulations compile by default, see SimulationConfig.compile)")
    ap.add_argument("--no-compile", action="store_true", help="eager rows only")
    ap.add_argument("--max-schnet-replicas", type=int, default=1000,
                    help="time the CGSchNet and reference cells only up to this many replicas (default 1000: one "
                         "eager SchNet step at 4096 replicas takes minutes on a loaded 2-core machine)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per cell, best kept (load noise)")
    ap.add_argument("--scope", action="store_true", help="only the compile scopes side by side (see above)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.scope:
        print(json.dumps(scope_compare(args), indent=1))
        return
    replicas = args.replicas or ([1, 10, 100] if args.quick else [1, 10, 100, 1000, 4096])
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    compile_at = set() if args.no_compile else set(args.compile if args.compile else replicas)

    prior, types = make_priors()
    model_kind = "raycg.model.CGSchNet (default CGSchNetConfig) + priors"
    try:
        model, model_cfg = make_raycg_model(prior, types)
    except ImportError as exc:  # the model package is not there: fall back to the same-size stand-in
        model, model_cfg = ReferenceModel(copy.deepcopy(prior), types), {}
        model_kind = f"stand-in: torch_geometric SchNet of the same size ({exc})"
    reference = ReferenceModel(copy.deepcopy(prior), types).eval().to(args.device)

    rows = []
    for r in replicas:
        x0 = start_positions(r)
        row: dict = {"replicas": r}
        rate, n, dead = raycg_rate(prior, x0, seconds, args.device, rounds=args.rounds)
        row["priors"] = {"replica_steps_per_s": rate * r, "bead_steps_per_s": rate * r * N_BEADS, "steps": n,
                         "blown_up": dead}
        if r > args.max_schnet_replicas:
            rows.append(row)
            print(json.dumps({"progress": row}), flush=True)
            continue
        ours, ref, n_ours, n_ref, dead = 0.0, 0.0, 0, 0, 0
        cpu_ours: dict = {}
        cpu_ref: dict = {}
        for _ in range(args.rounds):  # alternate the two sides: the machine's load drifts
            rate, n, d = raycg_rate(model, x0, seconds, args.device, rounds=1, cpu=cpu_ours)
            ours, n_ours, dead = max(ours, rate), n_ours + n, max(dead, d)
            rate, n = reference_rate(reference, x0, seconds, args.device, rounds=1, cpu=cpu_ref)
            ref, n_ref = max(ref, rate), n_ref + n
        row["raycg_cgschnet"] = {"replica_steps_per_s": ours * r, "bead_steps_per_s": ours * r * N_BEADS,
                                 "replica_steps_per_cpu_s": cpu_ours["steps_per_cpu_s"] * r,
                                 "steps": n_ours, "blown_up": dead}
        row["reference_pyg_schnet"] = {"replica_steps_per_s": ref * r, "bead_steps_per_s": ref * r * N_BEADS,
                                       "replica_steps_per_cpu_s": cpu_ref["steps_per_cpu_s"] * r, "steps": n_ref}
        row["ratio_vs_reference"] = ours / ref
        row["ratio_per_cpu_second"] = cpu_ours["steps_per_cpu_s"] / cpu_ref["steps_per_cpu_s"]
        if r in compile_at:
            try:
                t0 = time.perf_counter()
                cpu_c: dict = {}
                rate, n, d = raycg_rate(model, x0, seconds, args.device, compile_step=True, rounds=args.rounds,
                                        cpu=cpu_c)
                row["raycg_cgschnet_compiled"] = {
                    "replica_steps_per_s": rate * r, "bead_steps_per_s": rate * r * N_BEADS,
                    "replica_steps_per_cpu_s": cpu_c["steps_per_cpu_s"] * r, "steps": n,
                    "blown_up": d, "wall_s_including_compile": time.perf_counter() - t0}
                row["ratio_compiled_vs_reference"] = rate / ref
                row["ratio_compiled_per_cpu_second"] = cpu_c["steps_per_cpu_s"] / cpu_ref["steps_per_cpu_s"]
            except Exception as exc:  # noqa: BLE001 - report, do not abort the table
                row["raycg_cgschnet_compiled"] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        rows.append(row)
        print(json.dumps({"progress": row}), flush=True)

    out = {
        "benchmark": "raycg.sim throughput, CLN025-like 10 beads, BAOAB dt 2 fs, float32",
        "device": args.device,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "model": model_kind,
        "model_config": model_cfg,
        "reference": "torch_geometric SchNet(hidden 128, filters 128, 3 interactions, 50 gaussians, cutoff 12 Å), "
                     "all-pairs plain-torch interaction_graph, autograd forces, plain BAOAB loop; + same priors",
        "seconds_per_round": seconds,
        "rounds": args.rounds,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "rows": rows,
        "target": ">= 3x reference replica-steps/s at >= 100 replicas (CPU)",
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
