"""The phases a trial runs: ``train``, ``simulate``, ``score``.

``cgschnet`` is the real pipeline (raycg.train -> raycg.sim -> raycg.evaluate). ``toy`` is a
seconds-long stand-in with the same reporting, checkpointing and failure behaviour (numpy only);
it exercises and benchmarks the Ray machinery (multi-node, node loss, driver loss) without
training a network.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from raycg.study.trial import TrialContext, TrialFailed
from raycg.utils.io import atomic_write_json


def get_pipeline(name: str):
    if name == "toy":
        return ToyPipeline()
    if name == "cgschnet":
        from raycg.study.cgschnet import CGSchNetPipeline

        return CGSchNetPipeline()
    raise ValueError(f"unknown pipeline {name!r}")


# --- toy ------------------------------------------------------------------------------------------
TOY_DEFAULTS: dict[str, Any] = {
    "epochs": 4,          # training epochs (one report + checkpoint each)
    "epoch_s": 0.2,       # wall time of one epoch (sleep + a little numpy work)
    "chunks": 3,          # simulation chunks (one report + checkpoint each)
    "chunk_s": 0.2,
    "lr": 0.05,           # > 1 makes the toy training diverge (loss -> inf/nan)
    "dt_ps": 0.004,       # > 0.05 makes every toy replica blow up
    "replicas": 8,
    "work": 0,            # size of a CPU-bound matrix product per epoch/chunk (0: sleep only)
    "seed": 0,
}


def toy_settings(config: dict[str, Any]) -> dict[str, Any]:
    s = dict(TOY_DEFAULTS)
    s.update(config.get("toy") or {})
    unknown = set(s) - set(TOY_DEFAULTS)
    if unknown:
        from raycg.errors import ConfigError

        raise ConfigError(f"toy: unknown setting(s) {sorted(unknown)}; known: {sorted(TOY_DEFAULTS)}")
    return s


def _busy(n: int, seed: int) -> float:
    if n <= 0:
        return 0.0
    a = np.random.default_rng(seed).standard_normal((n, n))
    return float(np.trace(a @ a))


class ToyPipeline:
    """Quadratic 'training', a random-walk 'simulation' and synthetic scores (deterministic per seed)."""

    def train(self, ctx: TrialContext) -> None:
        s = toy_settings(ctx.config)
        w = float(ctx.config["energy_weight"])
        path = ctx.work / "toy_train.json"
        st = json.loads(path.read_text()) if path.exists() else {"epoch": 0, "loss": 10.0, "history": []}
        for epoch in range(st["epoch"] + 1, int(s["epochs"]) + 1):
            t0 = time.perf_counter()
            _busy(int(s["work"]), epoch)
            time.sleep(max(0.0, float(s["epoch_s"]) - (time.perf_counter() - t0)))
            with np.errstate(over="ignore", invalid="ignore"):
                loss = float(st["loss"] * abs(1.0 - 2.0 * float(s["lr"])) ** 8 + 0.01 * w)
            st.update(epoch=epoch, loss=loss)
            st["history"].append({"epoch": epoch, "loss": loss})
            atomic_write_json(path, st)
            if not np.isfinite(loss) or loss > 1e12:
                raise TrialFailed(f"training diverged at epoch {epoch}: loss={loss:.3g} (lr={s['lr']})", "train")
            ctx.report({"epoch": epoch, "train_loss": loss}, phase="train", progress=0.6 * epoch / s["epochs"])
        model = ctx.work / "model"
        model.mkdir(exist_ok=True)
        atomic_write_json(model / "toy_model.json", {"energy_weight": w, "final_loss": st["loss"]})
        ctx.upload(model, "model")
        ctx.metrics["final_train_loss"] = float(st["loss"])

    def simulate(self, ctx: TrialContext) -> None:
        s = toy_settings(ctx.config)
        seed = int(s["seed"])
        sim = ctx.work / "sim"
        sim.mkdir(exist_ok=True)
        done = sorted(sim.glob("chunk_*.npy"))
        for chunk in range(len(done), int(s["chunks"])):
            t0 = time.perf_counter()
            _busy(int(s["work"]), 1000 + chunk)
            time.sleep(max(0.0, float(s["chunk_s"]) - (time.perf_counter() - t0)))
            if float(s["dt_ps"]) > 0.05:
                raise TrialFailed(f"simulation blew up: all {s['replicas']} replicas died in chunk {chunk} "
                                  f"(dt_ps={s['dt_ps']})", "simulate")
            rng = np.random.default_rng([seed, chunk])
            np.save(sim / f"chunk_{chunk:03d}.npy", rng.standard_normal((int(s["replicas"]), 50)).astype(np.float32))
            ctx.report({"chunk": chunk + 1}, phase="simulate", progress=0.6 + 0.3 * (chunk + 1) / s["chunks"])
        atomic_write_json(sim / "replicas.json", {"n_replicas": s["replicas"], "blown_up": []})
        ctx.upload(sim, "sim")

    def score(self, ctx: TrialContext) -> None:
        s = toy_settings(ctx.config)
        w = float(ctx.config["energy_weight"])
        rng = np.random.default_rng([int(s["seed"]), 7])
        kl = 0.30 + 0.05 * w + 0.05 * rng.standard_normal()
        metrics = {
            "kl_ref_model": float(abs(kl)),
            "js_divergence": float(abs(kl) / 4),
            "wasserstein_tic": float(0.5 + 0.1 * w + 0.05 * rng.standard_normal()),
            "fes_mse": float(0.8 + 0.2 * w + 0.1 * abs(rng.standard_normal())),
            "folded_fraction": float(np.clip(0.5 + 0.1 * w + 0.05 * rng.standard_normal(), 0, 1)),
            "transitions_per_replica": float(max(0.0, 6.0 - 2.0 * w + rng.standard_normal())),
            "n_replicas_blown_up": 0.0,
        }
        ctx.metrics.update(metrics)
        ctx.store.write_json(f"{ctx.rel}/scores.json", {"metrics": metrics, "toy": True})
        edges = np.linspace(-2, 2, 17)
        c = 0.5 * (edges[1:] + edges[:-1])
        ref = c[:, None] ** 2 + c[None, :] ** 2
        model = ref * (1 + 0.1 * w)
        hist_ref, hist_model = np.exp(-ref), np.exp(-model)
        tmp = Path(ctx.work / "fes.npz")
        np.savez(tmp, edges_x=edges, edges_y=edges, fes_reference=ref, fes_model=model,
                 hist_reference=hist_ref / hist_ref.sum(), hist_model=hist_model / hist_model.sum())
        ctx.upload_file(tmp, "fes.npz")
