"""The state of all replicas of a batched simulation, blow-up detection, and checkpoint files.

Units: Å, Å/ps, kcal/mol/Å, kcal/mol. Tensors are batched over replicas ([R, B, 3] or [R]).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from raycg.errors import InputError
from raycg.sim.config import SimulationConfig
from raycg.utils.io import atomic_path

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "raycg-sim-checkpoint"
OPENMM_CHECKPOINT_FORMAT = "raycg-openmm-checkpoint"
#: the checkpoint format each engine (``SimulationConfig.engine``) writes
CHECKPOINT_FORMATS = {"raycg": CHECKPOINT_FORMAT, "openmm": OPENMM_CHECKPOINT_FORMAT}
#: config fields that may differ between a checkpoint and the run that resumes it. ``engine`` is not
#: one: the engines' states (a torch RNG stream; OpenMM Context checkpoints) do not translate, and
#: one output directory is one engine's run, so another engine is refused (:func:`load_checkpoint`)
RESUMABLE_CHANGES = {"n_steps", "checkpoint_every", "chunk_frames", "compile", "capture"}
_TENSORS = ("x", "v", "f", "e", "alive", "died", "reason", "step")


@dataclass
class ReplicaState:
    """Positions x, velocities v, forces f [R, B, 3], energies e [R]; per replica whether it is
    alive, the step it died at (-1: alive) and why (:data:`raycg.sim.integrators.REASONS`); the
    step counter (an int64 scalar on the device, so that a captured step can advance it)."""

    x: Tensor
    v: Tensor
    f: Tensor
    e: Tensor
    alive: Tensor
    died: Tensor
    reason: Tensor
    step: Tensor

    @classmethod
    def start(cls, x: Tensor, v: Tensor, f: Tensor, e: Tensor, step: int = 0) -> ReplicaState:
        r, dev = x.shape[0], x.device
        return cls(x, v, f, e, torch.ones(r, dtype=torch.bool, device=dev),
                   torch.full((r,), -1, dtype=torch.int64, device=dev), torch.zeros(r, dtype=torch.int64, device=dev),
                   torch.tensor(step, dtype=torch.int64, device=dev))

    @classmethod
    def from_checkpoint(cls, ck: dict, device: torch.device, dtype: torch.dtype) -> ReplicaState:
        real = {k: ck[k].to(device=device, dtype=dtype) for k in ("x", "v", "f", "e")}
        flags = {k: ck[k].to(device) for k in ("alive", "died", "reason")}
        return cls(**real, **flags, step=torch.tensor(int(ck["step"]), dtype=torch.int64, device=device))

    def replace(self, **changes: Tensor) -> ReplicaState:
        return dataclasses.replace(self, **changes)

    def clone(self) -> ReplicaState:
        return ReplicaState(*(getattr(self, k).clone() for k in _TENSORS))

    def copy_(self, other: ReplicaState) -> ReplicaState:
        """Overwrite this state's tensors in place (a captured step's static state)."""
        for k in _TENSORS:
            getattr(self, k).copy_(getattr(other, k))
        return self

    def checkpoint_tensors(self) -> dict[str, Tensor]:
        """Host copies of the tensors a checkpoint stores (the step is stored as an int)."""
        return {k: getattr(self, k).detach().cpu() for k in _TENSORS if k != "step"}


@dataclass
class BlowupGuard:
    """Per-replica blow-up detection and masking. Bonds (bi[n], bj[n]) longer than ``max_bond`` Å
    (when set), or anything non-finite, kill a replica: it is frozen at its last good state."""

    bi: Tensor
    bj: Tensor
    max_bond: float | None

    def codes(self, x: Tensor, v: Tensor, f: Tensor, e: Tensor) -> Tensor:
        """Per-replica blow-up code (0 = healthy; see REASONS). A NaN/inf anywhere poisons the sums."""
        r = x.shape[0]
        zero = torch.zeros((), dtype=torch.int64, device=x.device)
        code = torch.where(torch.isfinite(v.reshape(r, -1).sum(1)), zero, 4)
        code = torch.where(torch.isfinite(e), code, 3)
        code = torch.where(torch.isfinite(f.reshape(r, -1).sum(1)), code, 2)
        code = torch.where(torch.isfinite(x.reshape(r, -1).sum(1)), code, 1)
        if self.max_bond is not None:
            d = (x[:, self.bi] - x[:, self.bj]).norm(dim=-1)
            code = torch.where((code == 0) & (d > self.max_bond).any(1), 5, code)
        return code

    def all_healthy(self, x: Tensor, v: Tensor, f: Tensor, e: Tensor) -> bool:
        """One cheap global check (a host sync: used on CPU only)."""
        total = x.sum() + f.sum() + v.sum() + e.sum()
        if not bool(torch.isfinite(total)):
            return False
        return self.max_bond is None or not bool(((x[:, self.bi] - x[:, self.bj]).norm(dim=-1) > self.max_bond).any())

    def mask(self, s: ReplicaState, x: Tensor, v: Tensor, f: Tensor, e: Tensor) -> ReplicaState:
        """The state after a step to (x, v, f, e): replicas that blow up now (or before) keep their
        last state; record when (``s.step``) and why. No host synchronisation."""
        code = self.codes(x, v, f, e)
        newly = s.alive & (code > 0)
        alive = s.alive & (code == 0)
        keep = alive[:, None, None]
        return ReplicaState(x=torch.where(keep, x, s.x), v=torch.where(keep, v, 0.0), f=torch.where(keep, f, 0.0),
                            e=torch.where(alive, e, s.e), alive=alive, died=torch.where(newly, s.step, s.died),
                            reason=torch.where(newly, code, s.reason), step=s.step)

    def kill_broken_starts(self, s: ReplicaState) -> ReplicaState:
        """Replicas whose start is already broken die at step 0 (positions made finite)."""
        code = self.codes(s.x, s.v, s.f, s.e)
        alive = code == 0
        keep = alive[:, None, None]
        return s.replace(x=torch.where(keep, s.x, torch.nan_to_num(s.x, nan=0.0, posinf=0.0, neginf=0.0)),
                         f=torch.where(keep, s.f, 0.0), v=torch.where(keep, s.v, 0.0), alive=alive,
                         died=torch.where(code > 0, torch.zeros_like(s.died), s.died),
                         reason=torch.where(code > 0, code, s.reason))


# ----------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, engine: str | None = None) -> dict:
    """The checkpoint at ``path``: either engine's (``engine=None``), or only ``engine``'s
    (``raycg`` or ``openmm``). InputError (one line) if it is unreadable, not a raycg simulation
    checkpoint, or written by another engine than the one named (:func:`check_resumable` refuses
    that too)."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise InputError(f"{path}: unreadable checkpoint ({type(exc).__name__})",
                         hint="delete the output directory or pass overwrite=True") from None
    fmt = ck.get("format") if isinstance(ck, dict) else None
    written_by = next((e for e, f in CHECKPOINT_FORMATS.items() if f == fmt), None)
    if written_by is None:
        raise InputError(f"{path} is not a raycg simulation checkpoint", hint="pass overwrite=True to start again")
    if engine is not None and written_by != engine:
        raise _other_engine(path, written_by, engine)
    return ck


def _other_engine(path: Path, written_by: str, engine: str) -> InputError:
    return InputError(f"{path}: cannot resume: the checkpoint was written by engine {written_by}, this run "
                      f"uses engine {engine}",
                      hint=f"resume with engine {written_by} (CLI: --engine {written_by}), or pass "
                           f"overwrite=True (CLI: --overwrite) to start again")


def check_resumable(ck: dict, cfg: SimulationConfig, r_: int, b_: int, path: Path) -> None:
    """Refuse (one line) a checkpoint of another engine, physics config, size, or beyond ``n_steps``."""
    old = json.loads(ck["config"])
    new = cfg.model_dump(mode="json")
    written_by = next((e for e, f in CHECKPOINT_FORMATS.items() if f == ck.get("format")), "raycg")
    if written_by != new.get("engine", "raycg"):
        raise _other_engine(path, written_by, new.get("engine", "raycg"))
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES:
            continue
        if old.get(key) != new.get(key):
            raise InputError(f"{path}: cannot resume: config field {key} was {old.get(key)!r}, now {new.get(key)!r}",
                             hint="use the same config, or overwrite=True to start again")
    if (int(ck["n_replicas"]), int(ck["n_beads"])) != (r_, b_):
        raise InputError(f"{path}: cannot resume: checkpoint has {ck['n_replicas']} replicas x {ck['n_beads']} "
                         f"beads, now {r_} x {b_}", hint="pass overwrite=True to start again")
    if int(ck["step"]) > cfg.n_steps:
        raise InputError(f"{path}: checkpoint is at step {ck['step']} beyond n_steps={cfg.n_steps}",
                         hint="raise n_steps or pass overwrite=True")
