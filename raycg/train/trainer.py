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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raycg.errors import ConfigError, DatasetError, InputError
from raycg.model.energy import EnergyModel, blocked_energy_and_forces, micro_batch_frames
from raycg.model.io import save_model
from raycg.model.schnet import CGSchNet
from raycg.train.config import TrainConfig
from raycg.train.losses import energy_loss, force_loss, forces_and_energy, total_loss
from raycg.utils.io import atomic_directory, atomic_write_json, atomic_write_text
from raycg.utils.progress import Progress
from raycg.utils.provenance import provenance

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

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"], d["model_dir"] = str(self.out_dir), str(self.model_dir)
        return d


# ----------------------------------------------------------------------------------------------
# preparation


def _config_digest(cfg: TrainConfig) -> str:
    keep = set(TrainConfig.model_fields) - {"epochs", "progress", "early_stopping_patience"}
    text = cfg.model_dump_json(include=keep)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available", where="device",
                          hint="use device: cpu")
    return dev


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


def _resolve_tica(cfg: TrainConfig, dataset: Any, tica: Any, out_dir: Path) -> Any:
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
# training


def train(config: TrainConfig, dataset: Any, priors: Any, tica: Any, out_dir: str | Path, *,
          report: Callable[[dict[str, float], Path], None] | None = None, resume: bool = True,
          device: str | torch.device = "cpu", cache_dir: str | Path | None = None) -> TrainResult:
    """Train CGSchNet on ``dataset`` (delta forces w.r.t. ``priors``; energy targets from ``tica``).

    ``priors``: a :class:`raycg.priors.PriorSet` or None (no prior). ``tica``: a ReferenceTICA or
    None (then ``config.tica`` says how to load/fit one, if the loss needs it). ``report(metrics,
    checkpoint_dir)`` is called after every epoch's checkpoint. With ``resume`` an existing
    checkpoint of the same config in ``out_dir`` is continued exactly.
    """
    cfg = config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = _resolve_device(device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    lc = cfg.loss
    w_f, w_e = lc.force_weight, lc.energy_weight
    where = str(getattr(dataset, "path", None) or "dataset")

    # --- inputs ---------------------------------------------------------------------------------
    if dataset.forces is None and w_f > 0:
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

    prior_module = priors.to_module() if priors is not None else None
    all_idx = np.concatenate([train_idx, val_idx])
    coords = np.asarray(dataset.coords[all_idx], dtype=np.float32)
    e_prior, f_prior = _prior_energies_forces(prior_module, coords)
    if dataset.forces is not None:
        delta = np.asarray(dataset.forces[all_idx], dtype=np.float32) - f_prior
    else:
        delta = np.zeros_like(f_prior)
    target = None
    target_info = None
    if lc.energy_target != "none":
        from raycg.train.targets import compute_energy_targets

        tica = _resolve_tica(cfg, dataset, tica, out_dir)
        if hasattr(tica, "check_compatible"):
            tica.check_compatible(dataset)
        tg = compute_energy_targets(dataset, tica, lc.energy_target, n_components=lc.n_components,
                                    density=lc.density, bins=lc.bins, bandwidth=lc.kde_bandwidth,
                                    cache_dir=cache_dir)
        target = tg.free_energy[all_idx] - e_prior
        target_info = tg.info
        if not np.all(np.isfinite(target)):
            raise DatasetError("energy targets (TICA free energy − prior energy) are not finite",
                               where=where, hint="check the priors and the dataset")

    n_tr = len(train_idx)

    def to_dev(a: np.ndarray | None, sl: slice) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(np.ascontiguousarray(a[sl])).to(dev, dtype)

    tr, va = slice(0, n_tr), slice(n_tr, None)
    x_tr, d_tr, t_tr = to_dev(coords, tr), to_dev(delta, tr), to_dev(target, tr)
    x_va, d_va, t_va = to_dev(coords, va), to_dev(delta, va), to_dev(target, va)
    has_val = len(val_idx) > 0
    prior_only_val_f = float(np.mean(delta[va].astype(np.float64) ** 2)) if has_val else float("nan")
    prior_only_train_f = float(np.mean(delta[tr].astype(np.float64) ** 2))
    types = torch.as_tensor(types_np, dtype=torch.long, device=dev)
    del coords, delta, f_prior

    # --- model, optimiser, schedule ---------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    net = CGSchNet(cfg.model).to(device=dev, dtype=dtype)
    oc = cfg.optim
    opt = torch.optim.AdamW(net.parameters(), lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay)
    if oc.schedule == "plateau":
        sched: Any = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=oc.plateau_factor,
                                                                patience=oc.plateau_patience, min_lr=oc.min_lr)
    elif oc.schedule == "exponential":
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=oc.gamma)
    else:
        sched = None

    ckpt_dir = out_dir / "checkpoint"
    digest = _config_digest(cfg)
    start_epoch, best_val, best_epoch, bad_epochs, stopped = 0, math.inf, -1, 0, False
    history: list[dict[str, float]] = []
    best_state = copy.deepcopy(net.state_dict())
    state_file = ckpt_dir / "state.pt"
    if resume and state_file.is_file():
        st = torch.load(state_file, map_location="cpu", weights_only=True)
        if st.get("config_digest") != digest:
            raise ConfigError(f"{out_dir} holds a checkpoint of a different training config", where="out",
                              hint="use a new output directory, or resume=False (CLI: --no-resume) to start over")
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        if sched is not None and st.get("scheduler") is not None:
            sched.load_state_dict(st["scheduler"])
        torch.set_rng_state(st["rng_cpu"])
        if dev.type == "cuda" and st.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(st["rng_cuda"], dev)
        start_epoch, best_val, best_epoch = int(st["epoch"]) + 1, float(st["best_val"]), int(st["best_epoch"])
        bad_epochs, stopped = int(st["bad_epochs"]), bool(st["stopped"])
        history = [dict(h) for h in st["history"]]
        best_state = st["best_model"]

    bs = cfg.batch_size
    n_batches = max(1, math.ceil(n_tr / bs))
    use_amp = cfg.amp and dev.type == "cuda"
    need_graph = w_f > 0
    bar = Progress(cfg.epochs * n_batches, desc="train", unit="batch", disable=not cfg.progress,
                   initial=start_epoch * n_batches)

    fused = net.energy_and_forces
    if cfg.use_compile(n_batches) and need_graph and net.use_dense(int(types.numel())):
        fused = torch.compile(net.energy_and_forces, dynamic=False)

    micro = micro_batch_frames(bs, int(types.numel()))
    compiled = {"fn": fused, "tried": fused is net.energy_and_forces}

    def fused_pass(pos: torch.Tensor):
        # a partial last batch runs eagerly (no recompilation for a new shape)
        fn = compiled["fn"] if pos.shape[0] == bs else net.energy_and_forces
        if compiled["tried"] or fn is net.energy_and_forces:
            return blocked_energy_and_forces(fn, pos, types, create_graph=True, block=micro)
        compiled["tried"] = True
        try:
            return blocked_energy_and_forces(fn, pos, types, create_graph=True, block=micro)
        except Exception as exc:  # noqa: BLE001 - a compiler failure (e.g. no C++ compiler); eager re-raises real errors
            import sys

            print(f"raycg.train: torch.compile failed ({type(exc).__name__}); training eagerly", file=sys.stderr,
                  flush=True)
            compiled["fn"] = net.energy_and_forces
            return blocked_energy_and_forces(net.energy_and_forces, pos, types, create_graph=True, block=micro)

    def step_loss(pos: torch.Tensor, dref: torch.Tensor, tref: torch.Tensor | None, *, train_mode: bool):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp and train_mode):
            if train_mode and need_graph:
                e, f = fused_pass(pos)
            elif train_mode:
                e, f = net(pos, types), None
            else:
                with torch.no_grad():
                    e, f = blocked_energy_and_forces(
                        lambda p: forces_and_energy(net, p, types, create_graph=False), pos, block=micro)
        lf = force_loss(f.to(dtype), dref) if f is not None else None
        le = energy_loss(e.to(dtype), tref, offset_invariant=lc.offset_invariant) if tref is not None else None
        return lf, le

    epoch = start_epoch - 1
    for epoch in range(start_epoch, cfg.epochs):
        if stopped:
            break
        net.train()
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(n_tr, generator=gen).to(dev)
        acc = torch.zeros(3, dtype=torch.float64, device=dev)     # force, energy, total (frame-weighted)
        t0 = time.perf_counter()
        for b in range(n_batches):
            idx = perm[b * bs : (b + 1) * bs]
            lf, le = step_loss(x_tr[idx], d_tr[idx], None if t_tr is None else t_tr[idx], train_mode=True)
            loss = total_loss(lf, le, w_f, w_e)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if oc.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), oc.grad_clip_norm)
            opt.step()
            k = float(len(idx))
            acc += torch.stack([(lf.detach() if lf is not None else loss.new_zeros(())).double() * k,
                                (le.detach() if le is not None else loss.new_zeros(())).double() * k,
                                loss.detach().double() * k])
            bar.update(1)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        train_time = time.perf_counter() - t0
        tr_f, tr_e, tr_loss = (acc / n_tr).tolist()

        # validation (full precision, no graph)
        net.eval()
        va_f = va_e = float("nan")
        if has_val:
            sf = se = 0.0
            vb = 4 * bs
            for s in range(0, x_va.shape[0], vb):
                lf, le = step_loss(x_va[s : s + vb], d_va[s : s + vb],
                                   None if t_va is None else t_va[s : s + vb], train_mode=False)
                k = float(min(vb, x_va.shape[0] - s))
                sf += float(lf.detach()) * k
                se += float(le.detach()) * k if le is not None else 0.0
            va_f = sf / x_va.shape[0]
            va_e = se / x_va.shape[0] if t_va is not None else float("nan")
            va_loss = (w_f * va_f if w_f > 0 else 0.0) + (w_e * va_e if w_e > 0 else 0.0)
        else:
            va_loss = tr_loss
        lr = float(opt.param_groups[0]["lr"])
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(va_loss)
        elif sched is not None:
            sched.step()
            for g in opt.param_groups:
                g["lr"] = max(g["lr"], oc.min_lr)
        if va_loss < best_val - cfg.early_stopping_min_delta:
            best_val, best_epoch, bad_epochs = va_loss, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            bad_epochs += 1
        if cfg.early_stopping_patience is not None and bad_epochs >= cfg.early_stopping_patience:
            stopped = True
        metrics = {
            "epoch": epoch, "train_force_loss": tr_f, "train_energy_loss": tr_e if t_tr is not None else float("nan"),
            "train_loss": tr_loss, "val_force_loss": va_f, "val_energy_loss": va_e, "val_loss": va_loss,
            "best_val_loss": best_val, "best_epoch": best_epoch, "lr": lr,
            "frames_per_s": n_tr / train_time if train_time > 0 else float("nan"), "epoch_time_s": train_time,
            "prior_only_val_force_loss": prior_only_val_f, "prior_only_train_force_loss": prior_only_train_f,
        }
        check_divergence(metrics)  # before the checkpoint: diverged weights never become a resume point
        history.append(metrics)
        state = {
            "version": CHECKPOINT_VERSION, "config_digest": digest, "epoch": epoch, "model": net.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": None if sched is None else sched.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
            "best_val": best_val, "best_epoch": best_epoch, "bad_epochs": bad_epochs, "stopped": stopped,
            "history": history, "best_model": best_state,
        }
        with atomic_directory(ckpt_dir, overwrite=True) as tmp:
            torch.save(state, tmp / "state.pt")
            (tmp / "epoch.txt").write_text(f"{epoch}\n")
        _write_history(out_dir / "train_history.csv", history)
        if report is not None:
            report(dict(metrics), ckpt_dir)
    bar.close()

    # --- final model: best validation weights, with the prior added back ---------------------------
    net.load_state_dict(best_state)
    net = net.to("cpu")
    model = EnergyModel(types_np, prior=prior_module, network=net)
    model_dir = save_model(out_dir / "model", model, priors=priors,
                           extra={"best_epoch": best_epoch, "best_val_loss": best_val, "dtype": cfg.dtype,
                                  "dataset_hash": dataset.content_hash})
    result = TrainResult(
        out_dir=out_dir, model_dir=model_dir, history=history, best_epoch=best_epoch, best_val_loss=best_val,
        epochs_run=len(history), stopped_early=stopped, prior_only_val_force_loss=prior_only_val_f,
        target_info=target_info, metrics=dict(history[-1]) if history else {},
    )
    atomic_write_json(out_dir / "train_result.json", result.to_json())
    atomic_write_json(out_dir / "provenance.json",
                      provenance(cfg, dataset.content_hash, n_train_frames=int(n_tr), n_val_frames=int(len(val_idx)),
                                 train_trajectories=[int(t) for t in train_traj],
                                 val_trajectories=[int(t) for t in val_traj], device=str(dev)))
    return result
