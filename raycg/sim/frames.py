"""Saved frames: device buffers filled during the run, flushed in chunks to files and/or memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from raycg.sim.integrators import kinetic_temperature
from raycg.sim.output import TrajectoryWriter
from raycg.sim.state import ReplicaState


class FrameBuffers:
    """``chunk`` frames of positions, energies, kinetic temperatures and alive flags on the device.

    :meth:`record` writes the next slot (host index); :meth:`record_at` writes the slot held in a
    device counter and advances it (no host value: a captured step can do it). Both write the same
    numbers. ``steps`` lists the steps of the frames held (host side).
    """

    def __init__(self, chunk: int, n_replicas: int, n_beads: int, m_int: Tensor, *, brownian: bool,
                 dtype: torch.dtype, device: torch.device) -> None:
        self.chunk = chunk
        self.m_int = m_int
        self.brownian = brownian
        self.x = torch.empty((chunk, n_replicas, n_beads, 3), dtype=dtype, device=device)
        self.e = torch.empty((chunk, n_replicas), dtype=dtype, device=device)
        self.t = torch.empty((chunk, n_replicas), dtype=dtype, device=device)
        self.alive = torch.empty((chunk, n_replicas), dtype=torch.bool, device=device)
        self.slot = torch.zeros(1, dtype=torch.int64, device=device)
        self.steps: list[int] = []

    @property
    def full(self) -> bool:
        return len(self.steps) == self.chunk

    def record(self, s: ReplicaState) -> None:
        k = len(self.steps)
        self.x[k] = s.x
        self.e[k] = s.e
        if self.brownian:
            self.t[k] = torch.nan
        else:
            self.t[k] = kinetic_temperature(s.v, self.m_int)
        self.alive[k] = s.alive

    def record_at(self, s: ReplicaState) -> None:
        """:meth:`record` into slot ``self.slot`` (a device counter), then advance it."""
        k = self.slot
        self.x.index_copy_(0, k, s.x.unsqueeze(0))
        self.e.index_copy_(0, k, s.e.unsqueeze(0))
        if self.brownian:
            self.t.index_fill_(0, k, torch.nan)
        else:
            self.t.index_copy_(0, k, kinetic_temperature(s.v, self.m_int).unsqueeze(0))
        self.alive.index_copy_(0, k, s.alive.unsqueeze(0))
        self.slot += 1

    def take(self) -> tuple[np.ndarray, ...] | None:
        """The frames held as host arrays (positions float32, energies and temperatures float64,
        alive, steps), and empty the buffers; None when there are none."""
        k = len(self.steps)
        if k == 0:
            return None
        xs = self.x[:k].detach().cpu().numpy().astype(np.float32)
        es = self.e[:k].detach().cpu().numpy().astype(np.float64)
        ts = self.t[:k].detach().cpu().numpy().astype(np.float64)
        al = self.alive[:k].detach().cpu().numpy()
        steps = np.asarray(self.steps, dtype=np.int64)
        self.steps.clear()
        self.slot.zero_()
        return xs, es, ts, al, steps


class FrameSink:
    """Where flushed frames go: the trajectory writer (with an output directory) and/or memory."""

    def __init__(self, writer: TrajectoryWriter | None, out_dir: Path | None, keep_positions: bool, dt_ps: float):
        self.writer = writer
        self.keep_positions = keep_positions
        self.in_memory = out_dir is None or keep_positions
        self.dt_ps = dt_ps
        self.mem: dict[str, list[np.ndarray]] = {"x": [], "e": [], "t": [], "alive": [], "step": []}

    def put(self, frames: tuple[np.ndarray, ...] | None) -> None:
        if frames is None:
            return
        xs, es, ts, al, steps = frames
        if self.writer is not None:
            self.writer.append(xs, steps * self.dt_ps, steps, es, ts, al)
        if self.in_memory:
            if self.keep_positions:
                self.mem["x"].append(np.where(al[:, :, None, None], xs, np.nan).astype(np.float32))
            self.mem["e"].append(np.where(al, es, np.nan))
            self.mem["t"].append(np.where(al, ts, np.nan))
            self.mem["alive"].append(al)
            self.mem["step"].append(steps)

    def stacked(self, key: str, empty_shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(self.mem[key], axis=0) if self.mem[key] else np.zeros(empty_shape)
