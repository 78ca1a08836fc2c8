"""Live trial metrics for the Ray dashboard (Prometheus / Grafana) via ``ray.util.metrics``.

Each trial process sets a few gauges, tagged ``study`` and ``trial`` (the readable trial id,
e.g. ``w0.1_s3``), whenever the trial reports to Tune:

=============================  ===============================================================
``raycg_trial_stage``          0 prepare, 1 train, 2 simulate, 3 score, 4 done, -1 failed
``raycg_trial_progress``       0..1 over the whole trial
``raycg_trial_epoch``          last finished training epoch (0-based)
``raycg_trial_loss``           training/validation losses, extra tag ``kind`` (``val_loss``, ...)
``raycg_trial_sim_chunk``      finished simulation chunks
``raycg_trial_sim_steps_per_s`` integration steps per second (all replicas advance per step)
``raycg_trial_eta_seconds``    remaining time of this trial, from its progress rate
=============================  ===============================================================

Ray exports them (with a ``ray_`` prefix) on every node's metrics port; the dashboard's Metrics
tab shows them once Prometheus and Grafana are connected (see ``docs/dashboard.md``).
:class:`TrialMetrics` is a no-op outside Ray and never lets a metrics problem fail a trial.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "raycg_trial_"
STAGES = {"prepare": 0, "train": 1, "simulate": 2, "score": 3, "done": 4, "failed": -1}
LOSS_KEYS = ("train_loss", "val_loss", "best_val_loss", "train_force_loss", "val_force_loss",
             "train_energy_loss", "val_energy_loss")
METRIC_NAMES = ("stage", "progress", "epoch", "loss", "sim_chunk", "sim_steps_per_s", "eta_seconds")

_GAUGES: dict[str, Any] = {}  # one set per process (Tune reuses actors between trials)


def _gauges() -> dict[str, Any] | None:
    if _GAUGES:
        return _GAUGES
    from ray.util.metrics import Gauge

    tags = ("study", "trial")
    desc = {
        "stage": "trial stage: 0 prepare, 1 train, 2 simulate, 3 score, 4 done, -1 failed",
        "progress": "fraction of the trial done (0..1)",
        "epoch": "last finished training epoch (0-based)",
        "sim_chunk": "finished simulation chunks",
        "sim_steps_per_s": "simulation integration steps per second (all replicas per step)",
        "eta_seconds": "estimated remaining seconds of the trial",
    }
    for name, text in desc.items():
        _GAUGES[name] = Gauge(PREFIX + name, description=text, tag_keys=tags)
    _GAUGES["loss"] = Gauge(PREFIX + "loss", description="training / validation loss by kind",
                            tag_keys=(*tags, "kind"))
    return _GAUGES


def ray_active() -> bool:
    """True inside a Ray worker or driver (never imports or starts Ray)."""
    ray = sys.modules.get("ray")
    try:
        return bool(ray is not None and ray.is_initialized())
    except Exception:  # noqa: BLE001
        return False


class TrialMetrics:
    """Sets the ``raycg_trial_*`` gauges of one trial; ``update`` is called at every report.

    ``simulation_steps``: (integration steps, chunks) of the trial's simulation, which turns
    finished chunks into steps/s (None: the pipeline's simulation has no steps).
    """

    def __init__(self, trial_id: str, study: str | None, simulation_steps: tuple[int, int] | None = None,
                 *, restored: bool = False, clock=time.monotonic):
        self.tags = {"study": str(study or ""), "trial": str(trial_id)}
        self.clock = clock
        self.t0 = clock()
        # progress at the start of this attempt (a restored trial learns it from its first report)
        self.p0: float | None = None if restored else 0.0
        self.enabled = ray_active()
        self.n_steps, self.chunks = simulation_steps or (0, 0)
        self._last_chunk: tuple[int, float] | None = None
        self.values: dict[str, float] = {}  # what was last set (also kept when Ray is absent)

    def _set(self, name: str, value: Any, **extra_tags: str) -> None:
        try:
            v = float(value)
        except (TypeError, ValueError):
            return
        if not math.isfinite(v):
            return
        key = name if not extra_tags else f"{name}:{','.join(extra_tags.values())}"
        self.values[key] = v
        if not self.enabled:
            return
        try:
            g = _gauges()
            g[name].set(v, tags={**self.tags, **extra_tags})
        except Exception as exc:  # noqa: BLE001 - metrics must never fail a trial
            log.debug("metrics disabled: %s", exc)
            self.enabled = False

    def update(self, metrics: dict[str, Any], *, phase: str, progress: float) -> None:
        now = self.clock()
        self._set("stage", STAGES.get(phase, 0))
        self._set("progress", progress)
        if "epoch" in metrics:
            self._set("epoch", metrics["epoch"])
        for key in LOSS_KEYS:
            if key in metrics:
                self._set("loss", metrics[key], kind=key)
        if "chunk" in metrics:
            chunk = int(metrics["chunk"])
            self._set("sim_chunk", chunk)
            if self._last_chunk is not None and self.n_steps and self.chunks and chunk > self._last_chunk[0]:
                steps = self.n_steps * (chunk - self._last_chunk[0]) / self.chunks
                dt = now - self._last_chunk[1]
                if dt > 0:
                    self._set("sim_steps_per_s", steps / dt)
            self._last_chunk = (chunk, now)
        elif phase == "train":  # the simulation starts after the last training report
            self._last_chunk = (0, now)
        # ETA from the progress made since this attempt started (restored trials start mid-way)
        if self.p0 is None:
            self.p0, self.t0 = float(progress), now
        done = float(progress) - self.p0
        if progress >= 1.0:
            self._set("eta_seconds", 0.0)
        elif done > 1e-6:
            self._set("eta_seconds", (now - self.t0) * (1.0 - float(progress)) / done)

    def finish(self, status: str) -> None:
        self._set("stage", STAGES["done"] if status == "ok" else STAGES["failed"])
        self._set("progress", 1.0)
        self._set("eta_seconds", 0.0)
