"""Training throughput (force matching with create_graph): raycg CGSchNet vs torch_geometric SchNet.

Same run, same sizes (hidden 128, filters 128, 3 interactions, 50 basis functions, batch 256):
one optimiser step = energy and forces (differentiable w.r.t. the weights), force MSE, backward,
AdamW step. torch_geometric's SchNet: forces by autograd with create_graph, on a plain-torch
interaction graph (all pairs; at 175 beads the same 12 Å neighbour list raycg uses, since
radius_graph needs pyg-lib/torch-cluster). raycg: the fused analytic energy+forces pass, eager
and (10 beads) ``torch.compile``d, over the micro-batches raycg.train uses (one loss per batch);
compilation is warm-up, not timed (on CUDA: whole batches and the fused AdamW, as the device
policy says for raycg.train). Each number is the best of
``--rounds`` timing rounds (the machine is shared; the best round is the least disturbed).
Prints one JSON object; ratio = raycg / pyg frames/s at 10 beads.

    python benchmarks/bench_train.py [--device cuda] [--steps 6] [--rounds 3] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch


def make_batch(n_struct: int, n_beads: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    # a random-walk chain with 3.8 Å steps: realistic Cα geometry, distances up to ~20 Å
    steps = torch.randn(n_struct, n_beads, 3, generator=g)
    steps = 3.8 * steps / steps.norm(dim=-1, keepdim=True)
    pos = torch.cumsum(steps, dim=1)
    forces = torch.randn(n_struct, n_beads, 3, generator=g)
    types = torch.arange(n_beads) % 20
    return pos.to(device), forces.to(device), types.to(device)


def time_steps(step, n_frames: int, steps: int, warmup: int, device: str, rounds: int = 3) -> dict:
    for _ in range(warmup):
        step()
    best_wall = best_cpu = 0.0
    for _ in range(rounds):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best_wall = max(best_wall, n_frames * steps / wall)
        best_cpu = max(best_cpu, n_frames * steps / cpu)
    return {"wall": round(best_wall, 1), "per_cpu_second": round(best_cpu, 1)}


def train_micro_batch(cfg, batch: int, n_beads: int, device: str) -> int:
    """Frames per micro-batch as raycg.train chooses them (the device policy; older raycg: CPU rule)."""
    try:
        from raycg.device import free_memory, model_pass_bytes, policy_for
    except ImportError:                                          # raycg before the device policy
        from raycg.model import micro_batch_frames

        return micro_batch_frames(batch, n_beads)
    each = model_pass_bytes(cfg, n_beads, torch.float32, training=True)
    return policy_for(device).train_micro_batch(batch, n_beads, each, free_memory(device))


def raycg_step_fn(n_beads: int, batch: int, device: str, method: str = "auto", compile: bool = False):
    from raycg.model import CGSchNet, CGSchNetConfig, blocked_energy_and_forces

    torch.manual_seed(0)
    cfg = CGSchNetConfig(num_types=20, hidden_channels=128, num_filters=128, num_interactions=3,
                         num_rbf=50, cutoff_upper=12.0, neighbour_method=method)
    net = CGSchNet(cfg).to(device)
    fused_adam = {"fused": True} if torch.device(device).type == "cuda" else {}   # as raycg.train on CUDA
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, **fused_adam)
    pos, fref, types = make_batch(batch, n_beads, device)
    fused = torch.compile(net.energy_and_forces, dynamic=False) if compile else net.energy_and_forces
    micro = train_micro_batch(cfg, batch, n_beads, device)      # as raycg.train does

    def step():
        _, f = blocked_energy_and_forces(fused, pos, types, create_graph=True, block=micro)
        loss = ((f - fref) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def pyg_step_fn(n_beads: int, batch: int, device: str, cutoff: float | None = None):
    from torch_geometric.nn.models import SchNet

    from raycg.model.neighbours import blocked_pairs

    pos0 = make_batch(batch, n_beads, device)[0]
    if cutoff is None:
        ii, jj = torch.meshgrid(torch.arange(n_beads), torch.arange(n_beads), indexing="ij")
        keep = ii != jj
        src, dst = ii[keep], jj[keep]
        off = (torch.arange(batch) * n_beads).unsqueeze(1)
        edge_index = torch.stack([(off + src).reshape(-1), (off + dst).reshape(-1)]).to(device)
    else:                                          # fixed positions: the list is built once
        i, j = blocked_pairs(pos0, cutoff)
        edge_index = torch.stack([torch.cat([i, j]), torch.cat([j, i])]).to(device)

    def all_pairs_graph(pos, batch_vec):
        row, col = edge_index
        return edge_index, (pos[row] - pos[col]).norm(dim=-1)

    torch.manual_seed(0)
    net = SchNet(hidden_channels=128, num_filters=128, num_interactions=3, num_gaussians=50, cutoff=12.0,
                 interaction_graph=all_pairs_graph).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    pos, fref, types = make_batch(batch, n_beads, device)
    z = (types + 1).repeat(batch)
    bvec = torch.arange(batch, device=device).repeat_interleave(n_beads)
    flat_pos, flat_f = pos.reshape(-1, 3), fref.reshape(-1, 3)

    def step():
        p = flat_pos.detach().requires_grad_(True)
        e = net(z, p, bvec)
        (g,) = torch.autograd.grad(e.sum(), p, create_graph=True)
        loss = ((-g - flat_f) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--skip-large", action="store_true", help="only the 10-bead comparison")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    out: dict = {"device": dev, "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "machine": platform.processor() or platform.machine(), "batch": args.batch,
                 "hidden": 128, "interactions": 3, "num_rbf": 50, "frames_per_s": {}}
    b, st, rd = args.batch, args.steps, args.rounds
    fps = out["frames_per_s"]
    pyg = time_steps(pyg_step_fn(10, b, dev), b, st, args.warmup, dev, rd)
    eager = time_steps(raycg_step_fn(10, b, dev), b, st, args.warmup, dev, rd)
    fps["10_beads"] = {"pyg_schnet": pyg, "raycg_eager": eager}
    out["ratio_raycg_eager_over_pyg_10_beads"] = round(eager["wall"] / pyg["wall"], 2)
    # per CPU second: less sensitive to other processes on a shared machine
    out["ratio_per_cpu_second_eager_10_beads"] = round(eager["per_cpu_second"] / pyg["per_cpu_second"], 2)
    if not args.no_compile:
        t0 = time.perf_counter()
        step = raycg_step_fn(10, b, dev, compile=True)
        step()
        out["compile_warmup_s"] = round(time.perf_counter() - t0, 1)
        comp = time_steps(step, b, st, args.warmup, dev, rd)
        pyg2 = time_steps(pyg_step_fn(10, b, dev), b, st, 1, dev, rd)     # again, same conditions
        fps["10_beads"]["raycg_compiled"] = comp
        fps["10_beads"]["pyg_schnet_again"] = pyg2
        best_pyg = max(pyg["wall"], pyg2["wall"])
        out["ratio_raycg_compiled_over_pyg_10_beads"] = round(comp["wall"] / best_pyg, 2)
        best_pyg_cpu = max(pyg["per_cpu_second"], pyg2["per_cpu_second"])
        out["ratio_per_cpu_second_compiled_10_beads"] = round(comp["per_cpu_second"] / best_pyg_cpu, 2)
    if not args.skip_large:
        for n, batch, cutoff in ((35, b, None), (175, max(1, b // 4), 12.0)):
            s2 = max(2, st // 2)
            ours = time_steps(raycg_step_fn(n, batch, dev), batch, s2, 1, dev, rd)
            theirs = time_steps(pyg_step_fn(n, batch, dev, cutoff), batch, s2, 1, dev, rd)
            fps[f"{n}_beads"] = {"batch": batch, "graph": "all pairs" if cutoff is None else f"{cutoff} A cutoff",
                                 "raycg_eager": ours, "pyg_schnet": theirs,
                                 "ratio": round(ours["wall"] / theirs["wall"], 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
