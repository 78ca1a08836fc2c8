"""The toy pipeline: seconds-long trials with the real pipeline's reporting, checkpoints and failures.

Quadratic "training", a random-walk "simulation" and synthetic scores (numpy only, deterministic
per seed) exercise and benchmark the Ray machinery (multi-node, node loss, driver loss, HPO)
without training a network. Settings: the spec's ``toy:`` section (``raycg.study.spec.ToySection``).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from raycg.study import prepared
from raycg.study.keys import config_hash
from raycg.study.pipelines.base import Objective, Pipeline, TrialContext, TrialFailed
from raycg.utils.io import atomic_write_json
from raycg.utils.provenance import provenance

if TYPE_CHECKING:
    from raycg.study.spec import StudySpec
    from raycg.study.storage import Store

#: metric -> (value at weight 0, slope per unit weight, noise sd); named as in raycg.evaluate.metric_table
_SCORES = {
    "kl_ref_model": (0.30, 0.05, 0.05), "kl_model_ref": (0.35, 0.05, 0.05), "js_divergence": (0.08, 0.01, 0.01),
    "w1": (0.50, 0.10, 0.05), "fes_mse_aligned": (0.60, 0.15, 0.08), "fes_mse": (0.80, 0.20, 0.10),
    "folded_fraction_abs_error": (0.10, 0.02, 0.02), "folding_transition_rate_log_ratio_abs": (0.70, 0.10, 0.10),
}


def _busy(n: int, seed: int) -> float:
    if n <= 0:
        return 0.0
    a = np.random.default_rng(seed).standard_normal((n, n))
    return float(np.trace(a @ a))


def _pause(seconds: float, work: int, seed: int) -> None:
    t0 = time.perf_counter()
    _busy(work, seed)
    time.sleep(max(0.0, seconds - (time.perf_counter() - t0)))


class ToyPipeline(Pipeline):
    name = "toy"
    seed_fields = ("toy.seed",)
    objective = Objective(per_epoch="train_loss", final="final_train_loss")
    uses_torch = False

    def prepare(self, spec: StudySpec, store: Store, *, log) -> dict[str, Any]:
        inputs = {"pipeline": self.name}
        key = config_hash(inputs)
        old = prepared.cached(store, key)
        if old:
            return old
        info = {"hash": key, "inputs": inputs, "data_hash": None, "files": [], "provenance": provenance(inputs)}
        store.write_json(f"{prepared.PREPARED}/{prepared.INFO}", info)
        return info

    def metric_names(self) -> list[str]:
        return ["final_train_loss", *_SCORES, "n_blown_up", "converged"]

    def epochs(self, config: StudySpec) -> int:
        return config.toy.epochs

    def train(self, ctx: TrialContext) -> None:
        s = ctx.config.toy
        path = ctx.work / "toy_train.json"
        st = json.loads(path.read_text()) if path.exists() else {"epoch": 0, "loss": 10.0, "history": []}
        for epoch in range(st["epoch"] + 1, s.epochs + 1):
            _pause(s.epoch_s, s.work, epoch)
            with np.errstate(over="ignore", invalid="ignore"):
                loss = float(st["loss"] * abs(1.0 - 2.0 * s.lr) ** 8 + 0.01 * ctx.energy_weight)
            st.update(epoch=epoch, loss=loss)
            st["history"].append({"epoch": epoch, "loss": loss})
            atomic_write_json(path, st)
            if not np.isfinite(loss) or loss > 1e12:
                raise TrialFailed(f"training diverged at epoch {epoch}: loss={loss:.3g} (lr={s.lr})", "train")
            ctx.report({"epoch": epoch, "train_loss": loss}, phase="train", progress=0.6 * epoch / s.epochs)
        model = ctx.work / "model"
        model.mkdir(exist_ok=True)
        atomic_write_json(model / "toy_model.json", {"energy_weight": ctx.energy_weight, "final_loss": st["loss"]})
        ctx.upload(model, "model")
        ctx.metrics["final_train_loss"] = float(st["loss"])

    def simulate(self, ctx: TrialContext) -> None:
        s = ctx.config.toy
        sim = ctx.work / "sim"
        sim.mkdir(exist_ok=True)
        for chunk in range(len(list(sim.glob("chunk_*.npy"))), s.chunks):
            _pause(s.chunk_s, s.work, 1000 + chunk)
            if s.dt_ps > 0.05:
                raise TrialFailed(f"simulation blew up: all {s.replicas} replicas died in chunk {chunk} "
                                  f"(dt_ps={s.dt_ps})", "simulate")
            rng = np.random.default_rng([s.seed, chunk])
            np.save(sim / f"chunk_{chunk:03d}.npy", rng.standard_normal((s.replicas, 50)).astype(np.float32))
            ctx.report({"chunk": chunk + 1}, phase="simulate", progress=0.6 + 0.3 * (chunk + 1) / s.chunks)
        atomic_write_json(sim / "replicas.json", {"n_replicas": s.replicas, "blown_up": []})
        ctx.upload(sim, "sim")

    def score(self, ctx: TrialContext) -> None:
        w = ctx.energy_weight
        rng = np.random.default_rng([ctx.config.toy.seed, 7])
        metrics: dict[str, float] = {}
        for name, (base, slope, sd) in _SCORES.items():
            v = abs(base + slope * w + sd * rng.standard_normal())
            metrics.update({name: v, f"{name}_ci_low": max(0.0, v - 2 * sd), f"{name}_ci_high": v + 2 * sd})
        metrics.update(n_blown_up=0.0, converged=1.0)
        ctx.metrics.update(metrics)
        ctx.convergence = {"converged": True, "reasons": [], "diagnostics": {}}
        ctx.write_json("scores.json", {"metrics": metrics, "convergence": ctx.convergence, "toy": True})
        edges = np.linspace(-2, 2, 17)
        c = 0.5 * (edges[1:] + edges[:-1])
        ref = c[:, None] ** 2 + c[None, :] ** 2
        model = ref * (1 + 0.1 * w)
        hist_ref, hist_model = np.exp(-ref), np.exp(-model)
        np.savez(ctx.work / "fes.npz", edges_x=edges, edges_y=edges, fes_reference=ref, fes_model=model,
                 hist_reference=hist_ref / hist_ref.sum(), hist_model=hist_model / hist_model.sum())
        ctx.upload_file(ctx.work / "fes.npz", "fes.npz")
