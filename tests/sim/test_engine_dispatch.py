"""``raycg.sim.simulate`` runs the engine ``config.engine`` names; a run resumes only with the engine
that wrote its checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from raycg.errors import InputError
from raycg.sim import SimulationConfig

from .sim_testlib import MASS, chain_bonds, chain_starts

N_BEADS = 5


class ChainPrior(torch.nn.Module):
    """Harmonic bonds ½k(r − 3.8)² (k = 40 kcal/mol/Å²) along a chain: a prior module for EnergyModel."""

    def __init__(self, n_beads: int) -> None:
        super().__init__()
        self.register_buffer("bonds", torch.as_tensor(chain_bonds(n_beads)))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        d = (pos[:, self.bonds[:, 1]] - pos[:, self.bonds[:, 0]]).norm(dim=-1)
        return (20.0 * (d - 3.8) ** 2).sum(-1)


def _model():
    from raycg.model import EnergyModel

    return EnergyModel(np.zeros(N_BEADS, np.int64), prior=ChainPrior(N_BEADS))


def _cfg(**kw) -> SimulationConfig:
    base = dict(n_steps=40, save_every=10, dt_ps=0.004, friction_per_ps=2.0, temperature_K=300.0,
                seed=1, compile=False, filter_table_spacing_A=None)
    base.update(kw)
    return SimulationConfig(**base)


def _run(cfg, **kw):
    from raycg.sim import simulate

    masses = np.full(N_BEADS, MASS)
    extra = {"workers": 1, "platform": "Reference"} if cfg.engine == "openmm" else {}
    return simulate(_model(), masses, chain_starts(2, N_BEADS), cfg, bonds=chain_bonds(N_BEADS),
                    progress=False, **extra, **kw)


def test_one_dispatcher_and_the_batched_engine_is_still_importable():
    import raycg.sim
    import raycg.sim.engine
    from raycg.study.pipelines.cgschnet import simulate as phase

    assert raycg.sim.simulate is not raycg.sim.engine.simulate
    assert raycg.sim.simulate.__module__ == "raycg.sim"
    src = open(phase.__file__).read()  # the study phase imports the dispatcher (under an older name)
    assert "run_simulation as simulate" in src or "from raycg.sim import simulate" in src
    pytest.importorskip("openmm")
    from raycg.sim.openmm_engine import run_simulation

    assert run_simulation is raycg.sim.simulate


def test_raycg_engine_runs_through_the_dispatcher_and_refuses_openmm_options():
    res = _run(_cfg())
    assert res.alive.all() and "openmm" not in res.info["forces"]
    from raycg.sim import simulate

    with pytest.raises(InputError, match="platform, workers apply to engine openmm only"):
        simulate(_model(), np.full(N_BEADS, MASS), chain_starts(2, N_BEADS), _cfg(), workers=2, platform="CPU")


@pytest.mark.parametrize("engine", ["raycg", "openmm"])
def test_bead_count_mismatch_is_one_line(engine):
    from raycg.sim import simulate

    if engine == "openmm":
        pytest.importorskip("openmm")
    with pytest.raises(InputError) as exc:
        simulate(_model(), np.full(N_BEADS + 1, MASS), chain_starts(2, N_BEADS + 1), _cfg(engine=engine),
                 progress=False)
    msg = str(exc.value)
    assert "the model has 5 beads but the start positions have 6" in msg and "\n" not in msg


@pytest.mark.openmm
def test_openmm_engine_runs_through_the_dispatcher():
    pytest.importorskip("openmm")
    res = _run(_cfg(engine="openmm"))
    assert res.alive.all() and res.info["forces"]["engine"] == "openmm"
    assert res.positions.shape == (2, 4, N_BEADS, 3)


@pytest.mark.openmm
@pytest.mark.parametrize("first,second", [("raycg", "openmm"), ("openmm", "raycg")])
def test_resuming_with_another_engine_is_refused_and_the_run_stays_resumable(tmp_path, first, second):
    """An interrupted run of one engine, resumed with the other: one line naming both engines, nothing
    in the directory changed; resumed with its own engine it finishes."""
    pytest.importorskip("openmm")
    out = tmp_path / "run"
    cfg = _cfg(engine=first, checkpoint_every=20)

    def stop(step, out_dir):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(cfg, out_dir=out, on_checkpoint=stop)
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(InputError) as exc:
        _run(cfg.model_copy(update={"engine": second}), out_dir=out)
    msg = str(exc.value)
    assert f"written by engine {first}, this run uses engine {second}" in msg and "\n" not in msg
    assert f"--engine {first}" in msg
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    _run(cfg, out_dir=out)
    rep = json.loads((out / "replicas.json").read_text())
    assert rep["resumed_from_step"] == 20 and rep.get("engine", "raycg") == first
