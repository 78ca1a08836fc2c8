"""The base model of a ``fes-corrected`` energy target (raycg.train.correction), made for a study.

- ``base_model: priors``: prepare simulates the prior-only energy model once per study with the trials'
  simulation settings (temperature, dt, friction, replicas, save interval, the prepared starts; seed
  ``simulation.start_seed``; ``training.loss.base_steps`` steps, default ``simulation.n_steps``), drops
  the evaluation's burn-in, projects the frames on the reference TICA and writes
  ``prepared/correction_base.npz`` (``y_base``, ``base_energy`` = the prior energy at every reference
  frame, optional ``base_weights``) with ``prepared/correction_base.json`` (what was simulated, frames,
  wall time, blown-up replicas). Every trial reads the same :class:`CorrectionInputs` back, so its
  targets are the ones prepare cached.
- ``base_model: force-matched``: the base of a trial is the study's trial with energy weight 0 and the
  same seed (and sweep values); in a study with ``grid.arms``, the baseline arm's trial of that seed
  (:func:`raycg.study.grid.baseline_point`), whose weight must be 0. The trial waits for that trial's
  final result (``training.loss.base_wait_s``), then uses its trained model's energy at every
  reference frame and its simulated frames: the base is trained and simulated once, not per arm.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raycg.errors import DatasetError
from raycg.study.pipelines.base import TrialFailed
from raycg.utils.io import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from raycg.study.pipelines.base import TrialContext
    from raycg.study.spec import StudySpec
    from raycg.train import CorrectionInputs

BASE_FILE = "correction_base.npz"
BASE_RECORD = "correction_base.json"
#: seconds between two looks at the base trial's result
POLL_S = 5.0
#: reference frames per block when a base model's energy is evaluated
ENERGY_BLOCK = 1024


def uses_correction(spec: StudySpec) -> bool:
    return spec.training.loss.energy_target == "fes-corrected"


def priors_base_config(spec: StudySpec) -> StudySpec | None:
    """The config whose ``fes-corrected`` target needs the prepared prior-only base: the spec itself,
    or (with arms) the first arm's trial config that asks for it; None when no trial does."""
    if uses_correction(spec) and spec.training.loss.base_model == "priors":
        return spec
    from raycg.study.grid import trial_config

    for name, values in spec.grid.arms.items():
        if values.get("training.loss.energy_target") == "fes-corrected":
            cfg = trial_config(spec, {"arm": name, "energy_weight": values["energy_weight"],
                                      "seed": spec.grid.seed_list()[0]})
            if cfg.training.loss.base_model == "priors":
                return cfg
    return None


def check_trial_correction(config: StudySpec, *, source: str) -> None:
    """One correction step; a force-matched base needs a weight-0 trial per seed (weight 0 in the grid,
    or a baseline arm of weight 0). A weight-0 trial of such a target is itself a base."""
    from raycg.errors import ConfigError

    loss = config.training.loss
    if not uses_correction(config):
        return
    if loss.correction_iterations > 1:
        raise ConfigError(f"{source}: training.loss.correction_iterations: the study pipeline runs one "
                          f"correction step, got {loss.correction_iterations}", hint="set it to 1")
    if loss.base_model != "force-matched":
        return
    grid = config.grid
    if not grid.arms:
        if 0 not in grid.energy_weights:
            raise ConfigError(f"{source}: grid.energy_weights: training.loss.base_model force-matched uses the "
                              "energy-weight-0 trial of each seed as the base model; add 0 to grid.energy_weights")
        return
    base = grid.baseline_arm()
    if grid.arms[base]["energy_weight"] != 0:
        raise ConfigError(f"{source}: grid.arms.{base}: training.loss.base_model force-matched uses the baseline "
                          f"arm's trial of each seed as the base model; its energy_weight must be 0")


def n_components(spec: StudySpec, tica) -> int:
    """The k TICA components of the spec's ``fes-corrected`` target (``choose_components``' rule)."""
    from raycg.train.targets import choose_components

    loss = spec.training.loss
    return choose_components(loss.energy_target, loss.n_components, np.asarray(tica.eigenvalues)[: int(tica.dim)]).k


def base_steps(spec: StudySpec) -> int:
    return spec.training.loss.base_steps or spec.simulation.n_steps


def prepare_key(spec: StudySpec) -> dict[str, Any]:
    """What the prepared correction depends on beyond the dataset, priors, TICA and starts."""
    loss = spec.training.loss
    key: dict[str, Any] = {"energy_target": loss.energy_target, "base_model": loss.base_model,
                           "n_components": loss.n_components, "bins": loss.bins, "smooth_bins": loss.smooth_bins}
    if loss.base_model == "priors":
        sim = spec.simulation.model_dump(mode="json", exclude={"seed", "chunks", "checkpoint_every", "device"})
        key.update(simulation=sim, base_steps=base_steps(spec),
                   burn_in_fraction=spec.evaluation.burn_in_fraction)
    return key


def tic_samples(replicas: Sequence[np.ndarray], planned: Sequence[int], burn_in: float, tica, k: int) -> np.ndarray:
    """Frames of every replica after the evaluation's burn-in (``floor(burn_in · planned frames)``
    dropped at its start), projected on the first ``k`` reference TICA components: [M, k]."""
    kept = [r[int(np.floor(burn_in * n)):] for r, n in zip(replicas, planned)]
    kept = [r for r in kept if len(r)]
    if not kept:
        raise DatasetError(f"the base model's simulation left no frames after dropping {burn_in:.0%} burn-in",
                           hint="simulate the base longer or lower evaluation.burn_in_fraction")
    return np.concatenate([tica.transform(np.asarray(r, np.float32), n_components=k) for r in kept])


@dataclass(frozen=True)
class PriorsBase:
    """The prior-only base run: its correction inputs and the record written beside them."""

    inputs: CorrectionInputs
    record: dict[str, Any]

    def save(self, out: Path) -> None:
        arrays = {"y_base": self.inputs.y_base, "base_energy": self.inputs.base_energy}
        if self.inputs.base_weights is not None:
            arrays["base_weights"] = self.inputs.base_weights
        with atomic_path(out / BASE_FILE) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        atomic_write_json(out / BASE_RECORD, self.record)


def simulate_priors_base(spec: StudySpec, ds, priors, tica, starts: np.ndarray, max_bond_A: float | None,
                         device: str = "cpu") -> PriorsBase:
    """Simulate the prior-only model from ``starts`` with the trials' settings (see the module docstring)."""
    from raycg.model import EnergyModel
    from raycg.sim import simulate
    from raycg.study.pipelines.cgschnet.simulate import engine_config
    from raycg.train import CorrectionInputs
    from raycg.train.trainer import reference_prior_energies

    sec = spec.simulation
    steps = base_steps(spec)
    resolved = {"temperature_K": float(ds.temperature), "max_bond_A": max_bond_A}
    cfg = engine_config(sec.model_copy(update={"n_steps": steps, "seed": sec.start_seed}), resolved, device=device)
    model = EnergyModel(ds.bead_types, prior=priors.to_module(), network=None)
    t0 = time.perf_counter()
    res = simulate(model, ds.masses, starts, cfg, bonds=ds.bonds, progress=False, keep_positions=True)
    wall = time.perf_counter() - t0
    k = n_components(spec, tica)
    planned = steps // cfg.save_every
    burn_in = spec.evaluation.burn_in_fraction
    y = tic_samples([res.replica_frames(r) for r in range(len(starts))], [planned] * len(starts), burn_in, tica, k)
    inputs = CorrectionInputs(y_base=y, base_energy=reference_prior_energies(priors, ds), base_model="priors",
                              label="priors")
    record = {"base_model": "priors", "simulation": cfg.model_dump(mode="json"), "replicas": len(starts),
              "n_steps": steps, "burn_in_fraction": burn_in, "frames_per_replica": planned,
              "n_frames": int(len(y)), "n_components": k, "wall_s": wall,
              "replica_steps_per_s": float(res.steps_per_s) * len(starts), "engine": res.info,
              "n_blown_up": int((~np.asarray(res.alive, bool)).sum()), "blown_up": res.blown_up,
              "file": BASE_FILE}
    return PriorsBase(inputs, json.loads(json.dumps(record, default=str)))


def load_priors_base(prep: Path) -> CorrectionInputs:
    """The prepared prior-only base's correction inputs (the arrays prepare computed the targets from)."""
    from raycg.train import CorrectionInputs

    with np.load(prep / BASE_FILE, allow_pickle=False) as z:
        weights = z["base_weights"] if "base_weights" in z.files else None
        return CorrectionInputs(y_base=z["y_base"], base_energy=z["base_energy"], base_weights=weights,
                                base_model="priors", label="priors")


def wait_for_result(read: Callable[[], dict | None], trial_id: str, timeout_s: float, *,
                    poll_s: float = POLL_S, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll ``read()`` (the base trial's ``result.json`` or None) until it is final and ``ok``.

    Raises :class:`TrialFailed` when the base trial failed, or after ``timeout_s`` without a result.
    """
    deadline = clock() + timeout_s
    while True:
        res = read()
        if res and res.get("status") == "ok":
            return res
        if res and res.get("status") == "failed":
            raise TrialFailed(f"base trial {trial_id} failed ({res.get('error')}): base_model force-matched "
                              "needs its trained model", "train")
        left = deadline - clock()
        if left <= 0:
            raise TrialFailed(f"base trial {trial_id} has no final result after {timeout_s:g} s "
                              "(training.loss.base_wait_s): base_model force-matched needs it", "train")
        sleep(min(poll_s, left))


def model_energies(model, coords: np.ndarray) -> np.ndarray:
    """A model's energy (kcal/mol, float64) at every frame of ``coords`` [F, B, 3], in blocks."""
    import torch

    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = np.empty(len(coords), np.float64)
    for s in range(0, len(coords), ENERGY_BLOCK):
        pos = torch.as_tensor(np.array(coords[s : s + ENERGY_BLOCK], np.float32)).to(device, dtype)
        e, _ = model.energy_and_forces(pos)
        out[s : s + len(pos)] = e.detach().double().cpu().numpy()
    return out


def study_spec(ctx: TrialContext) -> StudySpec:
    """The study's spec (``study.json``): with arms, the trial's own config carries its arm's values,
    so the base trial's config is made from the spec itself."""
    if not ctx.config.grid.arms:
        return ctx.config   # the point's values are all set again for the base
    from raycg.config import validate_config
    from raycg.study.spec import StudySpec

    return validate_config(StudySpec, ctx.store.read_json("study.json")["spec"], source=f"{ctx.store.root}/study.json")


def force_matched_inputs(ctx: TrialContext, ds, tica) -> CorrectionInputs:
    """The correction inputs of a trial whose base is its seed's force-matched trial (waits for it)."""
    from raycg.evaluate import load_model_trajectories
    from raycg.model.io import load_model
    from raycg.study.grid import baseline_point, make_trial
    from raycg.study.pipelines.cgschnet.inputs import device_for
    from raycg.train import CorrectionInputs

    spec = study_spec(ctx)
    base = make_trial(spec, baseline_point(spec, ctx.point), source=ctx.rel)
    rel = f"trials/{base.trial_id}"

    def read() -> dict | None:
        res = ctx.store.try_read_json(f"{rel}/result.json")
        return res if res and res.get("config_hash") == base.config_hash else None

    wait_for_result(read, base.trial_id, ctx.config.training.loss.base_wait_s)
    for part in ("model", "sim"):
        if not ctx.store.exists(f"{rel}/{part}"):
            raise TrialFailed(f"base trial {base.trial_id} has no {part} output ({ctx.store.uri(rel)}/{part})", "train")
    local = ctx.work / "base"
    model = load_model(ctx.store.download_dir(f"{rel}/model", local / "model"), device=device_for(ctx.config))
    try:
        samples = load_model_trajectories(ctx.store.download_dir(f"{rel}/sim", local / "sim"), reference=ds)
        planned = samples.planned_frames or [len(r) for r in samples.replicas]
        y = tic_samples(samples.replicas, planned, ctx.config.evaluation.burn_in_fraction, tica,
                        n_components(ctx.config, tica))
    except DatasetError as exc:
        raise TrialFailed(f"base trial {base.trial_id}: {exc}", "train") from None
    return CorrectionInputs(y_base=y, base_energy=model_energies(model, ds.coords), base_model="force-matched",
                            label=base.trial_id)


def trial_correction(ctx: TrialContext, ds, tica) -> CorrectionInputs | None:
    """What the trial's ``train`` gets as ``correction`` (None unless the target is ``fes-corrected``)."""
    if not uses_correction(ctx.config):
        return None
    if ctx.config.training.loss.base_model == "priors":
        return load_priors_base(ctx.prepared_dir())
    return force_matched_inputs(ctx, ds, tica)

