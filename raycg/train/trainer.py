"""The trainer: force matching (+ optional TICA energy matching) of CGSchNet on the delta forces.

``train(config, dataset, priors, tica, out_dir)`` is the one function both ``raycg train`` and a
Ray trial call. Everything per frame that does not change during training is computed once up
front (prior energies and forces → delta forces; energy targets), so a training step touches
only the network. Output directory::

    OUT/
      checkpoint/state.pt     every epoch (atomic): model, optimiser, scheduler, RNG, epoch, best
      train_history.csv       one row per epoch (atomic rewrite)
      model/                  the best-validation model (save_model: weights + config + priors)
      train_result.json       summary (best epoch, losses, prior-only baseline, target info)
      provenance.json         config, versions, git commit, dataset hash
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from raycg.device import (
    CPU,
    CompileFallback,
    check_fast_path,
    compile_private,
    free_memory,
    model_pass_bytes,
    policy_for,
    resolve_device,
)
from raycg.errors import ConfigError, DatasetError, InputError
from raycg.model.energy import EnergyModel, blocked_energy_and_forces
from raycg.model.io import save_model
from raycg.model.schnet import CGSchNet
from raycg.train.config import TrainConfig
from raycg.train.losses import energy_loss, force_loss, forces_and_energy, total_loss
from raycg.train.validation import energy_validation_loss
from raycg.utils.io import atomic_directory, atomic_write_json, atomic_write_text
from raycg.utils.progress import Progress
from raycg.utils.provenance import provenance

if TYPE_CHECKING:
    from raycg.cv.tica import ReferenceTICA
    from raycg.data.format import CGDataset
    from raycg.priors.prior_set import PriorSet
    from raycg.train.correction import CorrectionInputs

#: a training force loss this many times the prior-only loss counts as divergence
DIVERGENCE_FACTOR = 1e4


class TrainingDiverged(RuntimeError):
    """Training losses stopped being finite or exploded; the epoch's weights were not checkpointed."""


def check_divergence(metrics: dict[str, float], factor: float = DIVERGENCE_FACTOR) -> None:
    """Raise :class:`TrainingDiverged` when a loss is not finite (validation may be NaN when there is
    no energy term) or the training force loss exceeds ``factor`` x the prior-only loss."""
    epoch = metrics.get("epoch")
    for key in ("train_loss", "train_force_loss", "val_loss"):
        v = metrics.get(key)
        if v is None or (key == "val_loss" and math.isnan(float(v))):
            continue
        if not math.isfinite(float(v)):
            raise TrainingDiverged(f"training diverged at epoch {epoch}: {key}={float(v)}")
    base, tl = metrics.get("prior_only_train_force_loss"), metrics.get("train_force_loss")
    if base is not None and tl is not None and math.isfinite(float(base)) and float(base) > 0 \
            and float(tl) > factor * float(base):
        raise TrainingDiverged(f"training diverged at epoch {epoch}: train_force_loss={float(tl):.3g} is more "
                               f"than {factor:g} x the prior-only loss ({float(base):.3g})")

CHECKPOINT_VERSION = 1
PRIOR_CHUNK = 8192


@dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    prior_only_val_force_loss: float
    target_info: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: how the training steps ran (:attr:`Trainer.step_path`): compiled, micro-batch, the check
    step_path: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"], d["model_dir"] = str(self.out_dir), str(self.model_dir)
        return d


# ----------------------------------------------------------------------------------------------
# preparation


#: Loss fields only the study pipeline reads (how it obtains the correction inputs); they do not
#: change a training given its inputs, so a checkpoint's digest leaves them out.
_STUDY_ONLY_LOSS_FIELDS = ("base_steps", "base_wait_s")


def _config_digest(cfg: TrainConfig) -> str:
    keep = set(TrainConfig.model_fields) - {"epochs", "progress", "early_stopping_patience"}
    if cfg.early_stopping_monitor == "val_loss":  # the default: digests from before the field stay valid
        keep.discard("early_stopping_monitor")
    text = cfg.model_dump_json(include=keep, exclude={"loss": set(_STUDY_ONLY_LOSS_FIELDS)})
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _prior_energies_forces(prior: torch.nn.Module | None, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prior energies [F] (float64) and forces [F,B,3] (float32) of coordinates, in chunks."""
    n = coords.shape[0]
    if prior is None:
        return np.zeros(n), np.zeros(coords.shape, np.float32)
    energies = np.empty(n, np.float64)
    forces = np.empty(coords.shape, np.float32)
    for s in range(0, n, PRIOR_CHUNK):
        pos = torch.as_tensor(np.asarray(coords[s : s + PRIOR_CHUNK], np.float64))
        with torch.enable_grad():
            p = pos.requires_grad_(True)
            e = prior(p)
            (g,) = torch.autograd.grad(e.sum(), p)
        energies[s : s + len(pos)] = e.detach().numpy()
        forces[s : s + len(pos)] = (-g).numpy()
    bad = ~np.isfinite(energies)
    if bad.any():
        raise DatasetError(f"the prior energy is not finite for {int(bad.sum())} frame(s) (first: local frame "
                           f"{int(np.argmax(bad))})", hint="overlapping beads? check the dataset and the priors")
    return energies, forces


def reference_prior_energies(priors: PriorSet | None, dataset: CGDataset) -> np.ndarray:
    """The prior energy U (kcal/mol, float64) at every frame of ``dataset``, as training computes it
    (the base energy of a ``fes-corrected`` target with ``base_model: priors``)."""
    module = priors.to_module() if priors is not None else None
    return _prior_energies_forces(module, np.asarray(dataset.coords, dtype=np.float32))[0]


def _resolve_tica(cfg: TrainConfig, dataset: CGDataset, tica: ReferenceTICA | None, out_dir: Path) -> ReferenceTICA:
    if tica is not None:
        return tica
    from raycg.cv import ReferenceTICA, fit_reference_tica

    s = cfg.tica
    if s.path:
        return ReferenceTICA.load(s.path)
    cached = out_dir / "tica.npz"
    if cached.exists():
        try:
            t = ReferenceTICA.load(cached)
            if t.dataset_hash == dataset.content_hash and t.lag == s.lag:
                return t
        except InputError:
            pass
    t = fit_reference_tica(dataset, lag=s.lag, dim=s.dim, features=s.features)
    t.save(cached)
    return t


def _evenly(idx: np.ndarray, n: int | None) -> np.ndarray:
    if n is None or len(idx) <= n:
        return idx
    return idx[np.linspace(0, len(idx) - 1, n).round().astype(np.int64)]


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]))
    w.writeheader()
    for row in history:
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class TrainData:
    """Everything per frame that does not change during training, resident on the training device:
    coordinates, delta forces (data − prior) and energy targets (free energy − prior) of the
    training and validation frames."""

    x_tr: torch.Tensor
    d_tr: torch.Tensor
    t_tr: torch.Tensor | None
    x_va: torch.Tensor
    d_va: torch.Tensor
    t_va: torch.Tensor | None
    types: torch.Tensor
    types_np: np.ndarray
    prior_module: Any
    train_traj: np.ndarray
    val_traj: np.ndarray
    prior_only_train_f: float
    prior_only_val_f: float
    target_info: dict[str, Any] | None

    @property
    def n_tr(self) -> int:
        return int(self.x_tr.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.x_va.shape[0])

    @property
    def n_beads(self) -> int:
        return int(self.types.numel())


def _check_inputs(cfg: TrainConfig, dataset: CGDataset, priors: PriorSet | None) -> None:
    where = str(getattr(dataset, "path", None) or "dataset")
    if dataset.forces is None and cfg.loss.force_weight > 0:
        raise DatasetError("dataset has no forces, but force matching (loss.force_weight > 0) needs them",
                           where=f"dataset ({where})", hint="import the dataset with its forces")
    types_np = dataset.bead_types
    if types_np.size and int(types_np.max()) >= cfg.model.num_types:
        raise ConfigError(f"bead type {int(types_np.max())} does not fit the embedding table "
                          f"(model.num_types={cfg.model.num_types})", where="model.num_types",
                          hint=f"set model.num_types to at least {int(types_np.max()) + 1}")
    if priors is not None and int(getattr(priors, "n_beads", dataset.n_beads)) != dataset.n_beads:
        raise InputError(f"priors are for {priors.n_beads} beads but the dataset has {dataset.n_beads}",
                         where="priors")


def _split(cfg: TrainConfig, dataset: CGDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(training trajectories, validation trajectories, training frames, validation frames)."""
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    if cfg.val_fraction > 0:
        from raycg.data.format import split_trajectories

        if dataset.n_trajectories < 2:
            raise DatasetError(f"val_fraction={cfg.val_fraction} needs at least 2 trajectories to split by "
                               f"trajectory, the dataset has {dataset.n_trajectories}", where="val_fraction",
                               hint="set val_fraction: 0 or cut the trajectory into blocks when importing")
        sp = split_trajectories(dataset, (1.0 - cfg.val_fraction, cfg.val_fraction, 0.0), seed=split_seed)
        train_traj, val_traj = sp.train, sp.validation
    else:
        train_traj, val_traj = np.arange(dataset.n_trajectories), np.zeros(0, np.int64)
    train_idx = dataset.frames_of(train_traj)[:: cfg.frame_stride]
    val_idx = _evenly(dataset.frames_of(val_traj), cfg.max_val_frames)
    if len(train_idx) == 0:
        raise DatasetError("no training frames after the split", where="val_fraction")
    return train_traj, val_traj, train_idx, val_idx


def _energy_targets(cfg: TrainConfig, dataset: CGDataset, tica: ReferenceTICA | None, out_dir: Path,
                    cache_dir: str | Path | None, all_idx: np.ndarray, e_prior: np.ndarray,
                    prior_module: torch.nn.Module | None = None,
                    correction: CorrectionInputs | None = None) -> tuple[np.ndarray | None, dict | None]:
    """Energy targets (TICA free energy − prior energy) of the frames ``all_idx``, and their info."""
    lc = cfg.loss
    if lc.energy_target == "none":
        return None, None
    from raycg.train.targets import compute_energy_targets

    tica = _resolve_tica(cfg, dataset, tica, out_dir)
    tica.check_compatible(dataset)
    if lc.energy_target == "fes-corrected" and correction is not None:
        if correction.base_model != lc.base_model:
            raise ConfigError(f"loss.base_model is {lc.base_model!r} but the correction inputs were made with "
                              f"base model {correction.base_model!r}")
        if correction.base_energy is None:          # base model = the priors: U₀ at every reference frame
            e0, _ = _prior_energies_forces(prior_module, np.asarray(dataset.coords, dtype=np.float32))
            correction = replace(correction, base_energy=e0)
    tg = compute_energy_targets(dataset, tica, lc.energy_target, n_components=lc.n_components, density=lc.density,
                                bins=lc.bins, bandwidth=lc.kde_bandwidth, cache_dir=cache_dir,
                                correction=correction, smooth_bins=lc.smooth_bins)
    target = tg.free_energy[all_idx] - e_prior
    if not np.all(np.isfinite(target)):
        raise DatasetError("energy targets (TICA free energy − prior energy) are not finite",
                           where=str(getattr(dataset, "path", None) or "dataset"),
                           hint="check the priors and the dataset")
    return target, tg.info


def prepare_data(cfg: TrainConfig, dataset: CGDataset, priors: PriorSet | None, tica: ReferenceTICA | None,
                 out_dir: Path, dev: torch.device, cache_dir: str | Path | None = None,
                 correction: CorrectionInputs | None = None) -> TrainData:
    """Split, prior energies and forces (once, float64), delta forces and energy targets, on ``dev``.

    ``correction``: the :class:`raycg.train.correction.CorrectionInputs` of a ``fes-corrected`` target.
    """
    _check_inputs(cfg, dataset, priors)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    train_traj, val_traj, train_idx, val_idx = _split(cfg, dataset)
    prior_module = priors.to_module() if priors is not None else None
    all_idx = np.concatenate([train_idx, val_idx])
    coords = np.asarray(dataset.coords[all_idx], dtype=np.float32)
    e_prior, f_prior = _prior_energies_forces(prior_module, coords)
    if dataset.forces is not None:
        delta = np.asarray(dataset.forces[all_idx], dtype=np.float32) - f_prior
    else:
        delta = np.zeros_like(f_prior)
    target, target_info = _energy_targets(cfg, dataset, tica, out_dir, cache_dir, all_idx, e_prior,
                                          prior_module, correction)
    n_tr = len(train_idx)

    def to_dev(a: np.ndarray | None, sl: slice) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(np.ascontiguousarray(a[sl])).to(dev, dtype)

    tr, va = slice(0, n_tr), slice(n_tr, None)
    return TrainData(
        x_tr=to_dev(coords, tr), d_tr=to_dev(delta, tr), t_tr=to_dev(target, tr),
        x_va=to_dev(coords, va), d_va=to_dev(delta, va), t_va=to_dev(target, va),
        types=torch.as_tensor(dataset.bead_types, dtype=torch.long, device=dev), types_np=dataset.bead_types,
        prior_module=prior_module, train_traj=train_traj, val_traj=val_traj,
        prior_only_train_f=float(np.mean(delta[tr].astype(np.float64) ** 2)),
        prior_only_val_f=float(np.mean(delta[va].astype(np.float64) ** 2)) if len(val_idx) else float("nan"),
        target_info=target_info)


# ----------------------------------------------------------------------------------------------
# training


@dataclass
class EpochState:
    """Where training stands: the next epoch, the best validation loss so far, early stopping."""

    best_state: dict
    start_epoch: int = 0
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


def _flat_grads(params: list[torch.Tensor], grads) -> torch.Tensor:
    """Gradients as one float64 vector (zeros for a parameter without one)."""
    return torch.cat([(torch.zeros_like(p) if g is None else g).detach().double().reshape(-1)
                      for p, g in zip(params, grads, strict=True)])


class Trainer:
    """One training run on prepared data: optimiser steps, validation, checkpoints, exact resume.

    Device choices come from the device policy (:mod:`raycg.device`): CPU micro-batches of ~8k bead
    pairs; on CUDA whole batches (split only if a batch would not fit in memory), the fused AdamW
    kernel, and no host synchronisation within an epoch (the losses accumulate on the device).
    """

    def __init__(self, cfg: TrainConfig, data: TrainData, dev: torch.device, out_dir: Path,
                 report: Callable[[dict[str, float], Path], None] | None = None, resume: bool = True) -> None:
        self.cfg, self.data, self.dev, self.out_dir, self.report = cfg, data, dev, out_dir, report
        self.policy = policy_for(dev)
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        torch.manual_seed(cfg.seed)
        self.net = CGSchNet(cfg.model).to(device=dev, dtype=self.dtype)
        self.opt, self.sched = self._optimiser()
        self.ckpt_dir = out_dir / "checkpoint"
        self.digest = _config_digest(cfg)
        self.state = EpochState(best_state=copy.deepcopy(self.net.state_dict()))
        if resume and (self.ckpt_dir / "state.pt").is_file():
            self._resume()
        self.bs = cfg.batch_size
        self.n_batches = max(1, math.ceil(data.n_tr / self.bs))
        self.use_amp = cfg.amp and dev.type == "cuda"
        self.need_graph = cfg.loss.force_weight > 0
        each = model_pass_bytes(cfg.model, data.n_beads, self.dtype, training=True)
        self.micro = self.policy.train_micro_batch(self.bs, data.n_beads, each, free_memory(dev))
        self.compiled = self._compiled_pass()
        #: the eager reference step's micro-batch: the CPU policy's (the measured, tested path)
        self.reference_micro = CPU.train_micro_batch(self.bs, data.n_beads, each, None)
        #: the first optimiser step is checked against the eager reference when it takes a fast path
        fast = self.compiled is not None or self.micro != self.reference_micro
        self.unchecked = self.need_graph and fast
        self.step_path: dict[str, Any] = {"compiled": self.compiled is not None,
                                          "micro_batch": self.micro}

    def _optimiser(self):
        oc = self.cfg.optim
        fused = {"fused": True} if self.policy.fused_optimizer and self.dev.type == "cuda" else {}
        opt = torch.optim.AdamW(self.net.parameters(), lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay, **fused)
        if oc.schedule == "plateau":
            sched: Any = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=oc.plateau_factor,
                                                                    patience=oc.plateau_patience, min_lr=oc.min_lr)
        elif oc.schedule == "exponential":
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=oc.gamma)
        else:
            sched = None
        return opt, sched

    def _resume(self) -> None:
        st = torch.load(self.ckpt_dir / "state.pt", map_location="cpu", weights_only=True)
        if st.get("config_digest") != self.digest:
            raise ConfigError(f"{self.out_dir} holds a checkpoint of a different training config", where="out",
                              hint="use a new output directory, or resume=False (CLI: --no-resume) to start over")
        self.net.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        if self.sched is not None and st.get("scheduler") is not None:
            self.sched.load_state_dict(st["scheduler"])
        torch.set_rng_state(st["rng_cpu"])
        if self.dev.type == "cuda" and st.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(st["rng_cuda"], self.dev)
        self.state = EpochState(best_state=st["best_model"], start_epoch=int(st["epoch"]) + 1,
                                best_val=float(st["best_val"]), best_epoch=int(st["best_epoch"]),
                                bad_epochs=int(st["bad_epochs"]), stopped=bool(st["stopped"]),
                                history=[dict(h) for h in st["history"]])

    def _compiled_pass(self) -> CompileFallback | None:
        """The compiled fused pass (with its eager fallback), when the policy and config say so."""
        cfg, net = self.cfg, self.net
        if not (self.policy.use_compile(cfg.compile, cfg.epochs * self.n_batches, training=True)
                and self.need_graph and net.use_dense(self.data.n_beads)):
            return None
        return CompileFallback(compile_private(net.energy_and_forces, dynamic=False), lambda: net.energy_and_forces,
                               who="raycg.train", then="training eagerly")

    # -- one optimiser step ------------------------------------------------------------------------
    def forces_pass(self, pos: torch.Tensor,
                    reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies and forces, differentiable w.r.t. the weights, micro-batch by micro-batch.
        A partial last batch runs eagerly (no recompilation for a new shape). ``reference``: the
        eager reference pass (uncompiled, in the reference micro-batches)."""
        if reference:
            fn, block = self.net.energy_and_forces, self.reference_micro
        else:
            full = self.compiled is not None and pos.shape[0] == self.bs
            fn, block = (self.compiled if full else self.net.energy_and_forces), self.micro
        return blocked_energy_and_forces(fn, pos, self.data.types, create_graph=True, block=block)

    def batch_losses(self, pos: torch.Tensor, dref: torch.Tensor, tref: torch.Tensor | None,
                     reference: bool = False):
        """(force loss, energy loss) of one training batch (None for a term not computed)."""
        lc = self.cfg.loss
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
            if self.need_graph:
                e, f = self.forces_pass(pos, reference)
            else:
                e, f = self.net(pos, self.data.types), None
        lf = force_loss(f.to(self.dtype), dref) if f is not None else None
        le = energy_loss(e.to(self.dtype), tref, offset_invariant=lc.offset_invariant) if tref is not None else None
        return lf, le

    def train_epoch(self, epoch: int, bar: Progress) -> tuple[list[float], float]:
        """One pass over the training frames in a seeded random order: ([force, energy, total]
        frame-weighted mean losses, seconds)."""
        cfg, d, net = self.cfg, self.data, self.net
        w_f, w_e = cfg.loss.force_weight, cfg.loss.energy_weight
        net.train()
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(d.n_tr, generator=gen).to(self.dev)
        acc = torch.zeros(3, dtype=torch.float64, device=self.dev)     # force, energy, total (frame-weighted)
        t0 = time.perf_counter()
        for b in range(self.n_batches):
            idx = perm[b * self.bs : (b + 1) * self.bs]
            batch = (d.x_tr[idx], d.d_tr[idx], None if d.t_tr is None else d.t_tr[idx])
            lf, le = self.batch_losses(*batch)
            loss = total_loss(lf, le, w_f, w_e)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.unchecked:
                lf, le, loss = self.check_step(batch, lf, le, loss)
            if cfg.optim.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip_norm)
            self.opt.step()
            k = float(len(idx))
            acc += torch.stack([(lf.detach() if lf is not None else loss.new_zeros(())).double() * k,
                                (le.detach() if le is not None else loss.new_zeros(())).double() * k,
                                loss.detach().double() * k])
            bar.update(1)
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        return (acc / d.n_tr).tolist(), time.perf_counter() - t0

    def check_step(self, batch: tuple, lf: torch.Tensor | None, le: torch.Tensor | None,
                   loss: torch.Tensor):
        """Check the first optimiser step of a fast path (compiled, or other micro-batches than the
        reference's) against the eager reference step on the same batch: loss and gradients
        (:func:`raycg.device.check_fast_path`; no gradient, weight or random draw of the run moves).
        On disagreement, one line, the reference path from then on, and this step's gradients are
        redone on it. Returns (force loss, energy loss, total) of the step that goes on."""
        self.unchecked = False
        cfg, params = self.cfg, list(self.net.parameters())
        got = [loss.detach(), _flat_grads(params, [p.grad for p in params])]
        cuda = [self.dev] if self.dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            ref_lf, ref_le = self.batch_losses(*batch, reference=True)
            ref = total_loss(ref_lf, ref_le, cfg.loss.force_weight, cfg.loss.energy_weight)
            grads = torch.autograd.grad(ref, params, allow_unused=True)
        want = [ref.detach(), _flat_grads(params, grads)]
        what = "compiled training step" if self.compiled is not None else "training step"
        then = "training eagerly" + (f" in micro-batches of {self.reference_micro} frames"
                                     if self.micro != self.reference_micro else "")
        check = check_fast_path(got, want, dtype=torch.bfloat16 if self.use_amp else self.dtype,
                                who="raycg.train", what=what, reference="eager step",
                                quantities="the loss or the gradients", then=then,
                                floor=torch.finfo(torch.float64).tiny)
        self.step_path["check"] = check
        if check["agrees"]:
            return lf, le, loss
        self.compiled, self.micro = None, self.reference_micro
        self.step_path.update(compiled=False, micro_batch=self.micro,
                              error="step disagrees with eager")
        lf, le = self.batch_losses(*batch)
        loss = total_loss(lf, le, cfg.loss.force_weight, cfg.loss.energy_weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return lf, le, loss

    # -- validation --------------------------------------------------------------------------------
    def validate(self, train_loss: float) -> tuple[float, float, float]:
        """(force loss, energy loss, total) on the validation frames, in full precision without a
        graph; the energy loss as training computes it (:func:`energy_validation_loss`). Without
        validation frames: NaN, NaN and the training loss."""
        cfg, d, net = self.cfg, self.data, self.net
        net.eval()
        if d.n_val == 0:
            return float("nan"), float("nan"), train_loss
        sf = torch.zeros((), dtype=torch.float64, device=self.dev)
        energies = []
        vb = 4 * self.bs
        with torch.no_grad():
            for s in range(0, d.n_val, vb):
                pos = d.x_va[s : s + vb]
                e, f = blocked_energy_and_forces(lambda p: forces_and_energy(net, p, d.types, create_graph=False),
                                                 pos, block=self.micro)
                sf += force_loss(f.to(self.dtype), d.d_va[s : s + vb]).double() * float(pos.shape[0])
                energies.append(e.to(self.dtype))
        va_f = float(sf) / d.n_val
        va_e = float("nan")
        if d.t_va is not None:
            va_e = float(energy_validation_loss(torch.cat(energies), d.t_va, batch_size=self.bs,
                                                offset_invariant=cfg.loss.offset_invariant))
        w_f, w_e = cfg.loss.force_weight, cfg.loss.energy_weight
        return va_f, va_e, (w_f * va_f if w_f > 0 else 0.0) + (w_e * va_e if w_e > 0 else 0.0)

    # -- end of an epoch ---------------------------------------------------------------------------
    def end_epoch(self, epoch: int, train: list[float], train_time: float, val: tuple[float, float, float]) -> None:
        """Schedule, best weights, early stopping (on ``early_stopping_monitor``), divergence check,
        checkpoint, history, report."""
        cfg, st, d = self.cfg, self.state, self.data
        tr_f, tr_e, tr_loss = train
        va_f, va_e, va_loss = val
        lr = float(self.opt.param_groups[0]["lr"])
        watched = va_f if cfg.early_stopping_monitor == "val_force_loss" and math.isfinite(va_f) else va_loss
        if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.sched.step(watched)
        elif self.sched is not None:
            self.sched.step()
            for g in self.opt.param_groups:
                g["lr"] = max(g["lr"], cfg.optim.min_lr)
        if watched < st.best_val - cfg.early_stopping_min_delta:
            st.best_val, st.best_epoch, st.bad_epochs = watched, epoch, 0
            st.best_state = copy.deepcopy(self.net.state_dict())
        else:
            st.bad_epochs += 1
        if cfg.early_stopping_patience is not None and st.bad_epochs >= cfg.early_stopping_patience:
            st.stopped = True
        metrics = {
            "epoch": epoch, "train_force_loss": tr_f, "train_energy_loss": tr_e if d.t_tr is not None else float("nan"),
            "train_loss": tr_loss, "val_force_loss": va_f, "val_energy_loss": va_e, "val_loss": va_loss,
            "best_val_loss": st.best_val, "best_epoch": st.best_epoch, "lr": lr,
            "frames_per_s": d.n_tr / train_time if train_time > 0 else float("nan"), "epoch_time_s": train_time,
            "prior_only_val_force_loss": d.prior_only_val_f, "prior_only_train_force_loss": d.prior_only_train_f,
        }
        check_divergence(metrics)  # before the checkpoint: diverged weights never become a resume point
        st.history.append(metrics)
        self.checkpoint(epoch)
        _write_history(self.out_dir / "train_history.csv", st.history)
        if self.report is not None:
            self.report(dict(metrics), self.ckpt_dir)

    def checkpoint(self, epoch: int) -> None:
        st = self.state
        state = {
            "version": CHECKPOINT_VERSION, "config_digest": self.digest, "epoch": epoch,
            "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": None if self.sched is None else self.sched.state_dict(), "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.dev) if self.dev.type == "cuda" else None,
            "best_val": st.best_val, "best_epoch": st.best_epoch, "bad_epochs": st.bad_epochs, "stopped": st.stopped,
            "history": st.history, "best_model": st.best_state,
        }
        with atomic_directory(self.ckpt_dir, overwrite=True) as tmp:
            torch.save(state, tmp / "state.pt")
            (tmp / "epoch.txt").write_text(f"{epoch}\n")

    def run(self) -> None:
        """Train from the next epoch to ``epochs`` (or until early stopping)."""
        cfg = self.cfg
        bar = Progress(cfg.epochs * self.n_batches, desc="train", unit="batch", disable=not cfg.progress,
                       initial=self.state.start_epoch * self.n_batches)
        for epoch in range(self.state.start_epoch, cfg.epochs):
            if self.state.stopped:
                break
            train, train_time = self.train_epoch(epoch, bar)
            self.end_epoch(epoch, train, train_time, self.validate(train[2]))
        bar.close()

    def path_report(self) -> dict[str, Any]:
        """How the steps ran: compiled (after any fallback), the micro-batch, the first step's
        check (difference, tolerance, agrees) and why a fast path was left."""
        out = dict(self.step_path)
        error = getattr(self.compiled, "error", None)
        if error is not None:
            out.update(compiled=False, compile_error=error)
        return out

    def finish(self, dataset: CGDataset, priors: PriorSet | None) -> TrainResult:
        """Save the best-validation model (prior added back), train_result.json and provenance.json."""
        st, d, out_dir = self.state, self.data, self.out_dir
        self.net.load_state_dict(st.best_state)
        net = self.net.to("cpu")
        model = EnergyModel(d.types_np, prior=d.prior_module, network=net)
        model_dir = save_model(out_dir / "model", model, priors=priors,
                               extra={"best_epoch": st.best_epoch, "best_val_loss": st.best_val,
                                      "dtype": self.cfg.dtype, "dataset_hash": dataset.content_hash})
        result = TrainResult(
            out_dir=out_dir, model_dir=model_dir, history=st.history, best_epoch=st.best_epoch,
            best_val_loss=st.best_val, epochs_run=len(st.history), stopped_early=st.stopped,
            prior_only_val_force_loss=d.prior_only_val_f, target_info=d.target_info,
            metrics=dict(st.history[-1]) if st.history else {}, step_path=self.path_report(),
        )
        atomic_write_json(out_dir / "train_result.json", result.to_json())
        atomic_write_json(out_dir / "provenance.json",
                          provenance(self.cfg, dataset.content_hash, n_train_frames=d.n_tr, n_val_frames=d.n_val,
                                     train_trajectories=[int(t) for t in d.train_traj],
                                     val_trajectories=[int(t) for t in d.val_traj], device=str(self.dev)))
        return result


def train(config: TrainConfig, dataset: CGDataset, priors: PriorSet | None, tica: ReferenceTICA | None,
          out_dir: str | Path, *,
          report: Callable[[dict[str, float], Path], None] | None = None, resume: bool = True,
          device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
          correction: CorrectionInputs | None = None) -> TrainResult:
    """Train CGSchNet on ``dataset`` (delta forces w.r.t. ``priors``; energy targets from ``tica``).

    ``priors``: a :class:`raycg.priors.PriorSet` or None (no prior). ``tica``: a ReferenceTICA or
    None (then ``config.tica`` says how to load/fit one, if the loss needs it). ``report(metrics,
    checkpoint_dir)`` is called after every epoch's checkpoint. With ``resume`` an existing
    checkpoint of the same config in ``out_dir`` is continued exactly. ``correction``
    (:class:`raycg.train.correction.CorrectionInputs`): the base model's simulated TICA samples, which
    ``loss.energy_target: fes-corrected`` needs (with ``base_energy`` None the priors are the base).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device, ConfigError, "device")
    policy_for(dev).apply_precision()
    data = prepare_data(config, dataset, priors, tica, out_dir, dev, cache_dir, correction)
    trainer = Trainer(config, data, dev, out_dir, report, resume)
    trainer.run()
    return trainer.finish(dataset, priors)
