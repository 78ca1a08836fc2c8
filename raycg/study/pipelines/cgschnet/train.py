"""Phase ``train``: CGSchNet on the study's dataset, priors and energy targets (raycg.train).

``fes-corrected`` targets get their correction inputs from ``correction.trial_correction``; with
``base_model: force-matched`` a trial of energy weight 0 *is* a base model and trains without
energy targets (it has no base of its own).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from raycg.study.pipelines.base import PHASE_END, TrialFailed
from raycg.study.pipelines.cgschnet.correction import trial_correction, uses_correction
from raycg.study.pipelines.cgschnet.inputs import device_for, reference_tica, trial_dataset

if TYPE_CHECKING:
    from raycg.study.pipelines.base import TrialContext
    from raycg.train import CorrectionInputs, TrainConfig

_FINAL_KEYS = ("val_force_loss", "val_energy_loss", "train_force_loss", "train_energy_loss")


def train_phase(ctx: TrialContext) -> None:
    from raycg.priors import PriorSet
    from raycg.train import TrainingDiverged, train

    prep = ctx.prepared_dir()
    cfg = ctx.config.training
    out = ctx.work / "train"
    epochs = max(1, int(cfg.epochs))

    def report(metrics: dict[str, float], checkpoint_dir: Path) -> None:
        m = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        ctx.report(m, phase="train", progress=PHASE_END["train"] * (int(metrics.get("epoch", 0)) + 1) / epochs)

    cache = prep / "targets" if (prep / "targets").is_dir() else None
    ds, tica = trial_dataset(ctx), reference_tica(ctx)
    cfg, corr = _correction(ctx, cfg, ds, tica)
    try:
        res = train(cfg, ds, PriorSet.load(prep / "priors.json"), tica, out, report=report, resume=True,
                    device=device_for(ctx.config), cache_dir=cache, correction=corr)
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
    for k in _FINAL_KEYS:
        if res.metrics.get(k) is not None:
            ctx.metrics[f"final_{k}"] = float(res.metrics[k])


def _correction(ctx: TrialContext, cfg: TrainConfig, ds, tica) -> tuple[TrainConfig, CorrectionInputs | None]:
    """The trial's training config and correction inputs (None unless the target is ``fes-corrected``)."""
    loss = cfg.loss
    if uses_correction(ctx.config) and loss.base_model == "force-matched" and ctx.energy_weight == 0:
        return cfg.model_copy(update={"loss": loss.model_copy(update={"energy_target": "none"})}), None
    return cfg, trial_correction(ctx, ds, tica)
