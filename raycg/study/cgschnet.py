"""The real trial pipeline: train CGSchNet -> simulate it -> score it against the reference TICA FES."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from raycg.study import adapters
from raycg.study.trial import TrialContext, TrialFailed


def _prepared(ctx: TrialContext) -> tuple[Path, dict[str, Any]]:
    prep = ctx.prepared_dir()
    info = json.loads((prep / "prepared.json").read_text())
    return prep, info


def _dataset(ctx: TrialContext):
    prep, info = _prepared(ctx)
    path = Path(info["dataset_path"])
    if info.get("dataset_rel") and not (path / "meta.json").is_file():
        path = prep / info["dataset_rel"]
    return adapters.load_dataset(path)


class CGSchNetPipeline:
    def train(self, ctx: TrialContext) -> None:
        from raycg.cv import ReferenceTICA
        from raycg.priors import PriorSet
        from raycg.train import TrainingDiverged, train

        prep, info = _prepared(ctx)
        ds = _dataset(ctx)
        priors = PriorSet.load(prep / "priors.json")
        tica = ReferenceTICA.load(prep / "tica.npz")
        cfg = adapters.train_config(ctx.config["training"], source=f"trial {ctx.trial_id}")
        out = ctx.work / "train"
        epochs = max(1, int(cfg.epochs))

        def report(metrics: dict[str, float], checkpoint_dir: Path) -> None:
            m = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
            ctx.report(m, phase="train", progress=0.6 * (int(metrics.get("epoch", 0)) + 1) / epochs)

        cache = prep / "targets" if (prep / "targets").is_dir() else None
        try:
            res = train(cfg, ds, priors, tica, out, report=report, resume=True,
                        device=adapters.device_for(ctx.config), cache_dir=cache)
        except TrainingDiverged as exc:
            raise TrialFailed(str(exc), "train") from None
        if not math.isfinite(float(res.best_val_loss)):
            raise TrialFailed(f"training diverged: best validation loss is {res.best_val_loss}", "train")
        ctx.upload(res.model_dir, "model")
        for name in ("train_history.csv", "train_result.json"):
            if (out / name).is_file():
                ctx.upload_file(out / name, name)
        ctx.metrics.update({
            "train_best_val_loss": float(res.best_val_loss),
            "train_best_epoch": float(res.best_epoch),
            "train_epochs": float(res.epochs_run),
            "train_prior_only_val_force_loss": float(res.prior_only_val_force_loss),
        })
        for k in ("val_force_loss", "val_energy_loss", "train_force_loss", "train_energy_loss"):
            if k in res.metrics and res.metrics[k] is not None:
                ctx.metrics[f"final_{k}"] = float(res.metrics[k])

    def simulate(self, ctx: TrialContext) -> None:
        from raycg.sim import simulate

        prep, info = _prepared(ctx)
        ds = _dataset(ctx)
        device = adapters.device_for(ctx.config)
        sec = dict(ctx.config["simulation"])
        chunks = int(sec.get("chunks", 4))
        cfg = adapters.sim_config(sec, source=f"trial {ctx.trial_id}")
        every = max(cfg.save_every, (cfg.n_steps // chunks) // cfg.save_every * cfg.save_every)
        updates: dict[str, Any] = {"device": device}
        if cfg.checkpoint_every is None:
            updates["checkpoint_every"] = every
        if cfg.blowup_max_bond_A is None and info.get("max_bond_A"):
            updates["blowup_max_bond_A"] = float(info["max_bond_A"])
        if cfg.temperature_K == 300.0 and "temperature_K" not in sec:
            updates["temperature_K"] = float(ds.temperature)
        cfg = cfg.model_copy(update=updates)
        model = adapters.load_model(ctx.work / "train" / "model", device)
        out = ctx.work / "sim"
        n_ck = [0]

        def on_chunk() -> None:
            n_ck[0] += 1
            ctx.report({"chunk": n_ck[0]}, phase="simulate", progress=0.6 + 0.3 * min(1.0, n_ck[0] / chunks))

        starts = np.load(prep / "start_positions.npy")
        # the engine calls back after each intermediate checkpoint, with its files closed and consistent
        res = simulate(model, ds.masses, starts, cfg, out_dir=out, topology=ds.topology(), bonds=ds.bonds,
                       progress=False, on_checkpoint=lambda step, out_dir: on_chunk())
        alive = np.asarray(res.alive, dtype=bool)
        if not alive.any():
            first = (res.blown_up or [{}])[0]
            raise TrialFailed(f"simulation blew up: all {alive.size} replicas died (first: replica "
                              f"{first.get('replica')} at step {first.get('step')}: {first.get('reason')})", "simulate")
        ctx.upload(out, "sim")
        ctx.metrics.update({"n_replicas_blown_up": float((~alive).sum()),
                            "sim_replica_steps_per_s": float(getattr(res, "replica_steps_per_s", float("nan")))})

    def score(self, ctx: TrialContext) -> None:
        from raycg.cv import ReferenceTICA
        from raycg.evaluate import load_model_trajectories, score

        prep, _ = _prepared(ctx)
        ds = _dataset(ctx)
        tica = ReferenceTICA.load(prep / "tica.npz")
        cfg = adapters.eval_config(ctx.config["evaluation"], source=f"trial {ctx.trial_id}")
        samples = load_model_trajectories(ctx.work / "sim", reference=ds)
        sc = score(ds, tica, samples, cfg)
        out = ctx.work / "scores"
        out.mkdir(exist_ok=True)
        sc.save(out)
        for f in sorted(out.iterdir()):
            if f.is_file():
                ctx.upload_file(f, f.name)
        ctx.metrics.update({k: float(v) for k, v in sc.metrics.items()
                            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)})
