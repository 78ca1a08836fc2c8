"""Training throughput (force matching with create_graph): raycg CGSchNet vs torch_geometric SchNet.

Same run, same sizes (hidden 128, filters 128, 3 interactions, 50 basis functions, batch 256):
one optimiser step = energy, forces by autograd with create_graph, force MSE, backward, AdamW
step. torch_geometric's SchNet gets a plain-torch all-pairs interaction graph (radius_graph
needs pyg-lib/torch-cluster). Prints one JSON object; ratio = raycg / pyg frames/s at 10 beads.

    python benchmarks/bench_train.py [--device cuda] [--steps 10] [--threads N]
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


def time_steps(step, n_frames: int, steps: int, warmup: int, device: str) -> float:
    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n_frames * steps / (time.perf_counter() - t0)


def raycg_step_fn(n_beads: int, batch: int, device: str, method: str = "auto"):
    from raycg.model import CGSchNet, CGSchNetConfig

    torch.manual_seed(0)
    cfg = CGSchNetConfig(num_types=20, hidden_channels=128, num_filters=128, num_interactions=3,
                         num_rbf=50, cutoff_upper=12.0, neighbour_method=method)
    net = CGSchNet(cfg).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    pos, fref, types = make_batch(batch, n_beads, device)

    def step():
        p = pos.detach().requires_grad_(True)
        e = net(p, types)
        (g,) = torch.autograd.grad(e.sum(), p, create_graph=True)
        loss = ((-g - fref) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def pyg_step_fn(n_beads: int, batch: int, device: str):
    from torch_geometric.nn.models import SchNet

    ii, jj = torch.meshgrid(torch.arange(n_beads), torch.arange(n_beads), indexing="ij")
    keep = ii != jj
    src, dst = ii[keep], jj[keep]
    off = (torch.arange(batch) * n_beads).unsqueeze(1)
    edge_index = torch.stack([(off + src).reshape(-1), (off + dst).reshape(-1)]).to(device)

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
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--skip-large", action="store_true", help="only the 10-bead comparison")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    out: dict = {"device": dev, "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "machine": platform.processor() or platform.machine(), "batch": args.batch,
                 "hidden": 128, "interactions": 3, "num_rbf": 50, "frames_per_s": {}}
    b = args.batch
    pyg = time_steps(pyg_step_fn(10, b, dev), b, args.steps, args.warmup, dev)
    ours = time_steps(raycg_step_fn(10, b, dev), b, args.steps, args.warmup, dev)
    out["frames_per_s"]["10_beads"] = {"raycg": round(ours, 1), "pyg_schnet": round(pyg, 1)}
    out["ratio_raycg_over_pyg_10_beads"] = round(ours / pyg, 2)
    if not args.skip_large:
        for n in (35, 175):
            steps = max(2, args.steps // (2 if n == 35 else 4))
            ours = time_steps(raycg_step_fn(n, b, dev), b, steps, 1, dev)
            pyg = time_steps(pyg_step_fn(n, b, dev), b, steps, 1, dev)
            out["frames_per_s"][f"{n}_beads"] = {"raycg": round(ours, 1), "pyg_schnet": round(pyg, 1),
                                                 "ratio": round(ours / pyg, 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
