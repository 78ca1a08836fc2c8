"""Bad configuration and bad inputs give one clear InputError naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from raycg.errors import ConfigError, InputError
from raycg.sim import SimulationConfig, make_config, simulate

from .sim_testlib import MASS, Chain, chain_starts


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("dt_ps", -0.002, "greater than 0"),
    ("dt_ps", float("nan"), "finite"),
    ("friction_per_ps", -1.0, "greater than or equal to 0"),
    ("n_steps", -5, "greater than or equal to 0"),
    ("save_every", 0, "greater than or equal to 1"),
    ("temperature_K", -300.0, "> 0"),
    ("temperature_K", [300.0, 0.0], "> 0"),
    ("dtype", "float16", "float32"),
    ("device", "gpu0", "unknown device"),
    ("integrator", "verlet", "baoab"),
    ("blowup_max_bond_A", 0.0, "greater than 0"),
    ("chunk_frames", 0, "greater than or equal to 1"),
])
def test_bad_field_is_named(field, value, needle):
    with pytest.raises(ConfigError) as err:
        SimulationConfig(**{field: value})
    msg = str(err.value)
    assert f"SimulationConfig: {field}" in msg and needle in msg and "\n" not in msg
    with pytest.raises(ConfigError, match=field):
        make_config({field: value})


def test_other_bad_configs():
    with pytest.raises(ConfigError, match="dt_fs: unknown field"):
        SimulationConfig(dt_fs=2.0)
    with pytest.raises(ConfigError, match="friction_per_ps must be > 0 for brownian"):
        SimulationConfig(integrator="brownian", friction_per_ps=0.0)
    cfg = SimulationConfig(temperature_K=[300.0, 310.0])
    with pytest.raises(ConfigError, match="temperature_K: has 2 values for 3 replicas"):
        simulate(Chain(3), np.full(3, MASS), chain_starts(3, 3), cfg, progress=False)


def test_bad_inputs_to_simulate():
    cfg = SimulationConfig(n_steps=2)
    x0 = chain_starts(2, 3)
    with pytest.raises(InputError, match="masses has 2 values for 3 beads"):
        simulate(Chain(3), np.full(2, MASS), x0, cfg, progress=False)
    with pytest.raises(InputError, match="masses must be finite and > 0"):
        simulate(Chain(3), np.array([MASS, -1.0, MASS]), x0, cfg, progress=False)
    with pytest.raises(InputError, match=r"start_positions must have shape \[replicas, beads, 3\]"):
        simulate(Chain(3), np.full(3, MASS), x0[..., :2], cfg, progress=False)
    bad = x0.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"start_positions of replica\(s\) \[1\] are not finite"):
        simulate(Chain(3), np.full(3, MASS), bad, cfg, progress=False)
    with pytest.raises(InputError, match="blowup_max_bond_A is set but no bonds"):
        simulate(Chain(3), np.full(3, MASS), x0, cfg.model_copy(update={"blowup_max_bond_A": 6.0}), progress=False)
    with pytest.raises(InputError, match="potential returned energy"):
        simulate(lambda x: x.sum(-1), np.full(3, MASS), x0, cfg, progress=False)
    with pytest.raises(InputError, match="velocities must be finite"):
        simulate(Chain(3), np.full(3, MASS), x0, cfg, velocities=np.zeros((2, 2, 3)), progress=False)
