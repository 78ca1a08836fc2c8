"""Loss fields only the study pipeline reads leave a training checkpoint's config digest alone."""

from __future__ import annotations

from raycg.train import TrainConfig
from raycg.train.trainer import _config_digest


def test_base_wait_and_base_steps_do_not_change_the_checkpoint_digest():
    loss = {"energy_target": "fes-corrected", "energy_weight": 1.0}
    cfg = TrainConfig.model_validate({"loss": loss, "tica": {"lag": 5}})
    other = TrainConfig.model_validate({"loss": {**loss, "base_wait_s": 5.0, "base_steps": 100}, "tica": {"lag": 5}})
    assert _config_digest(cfg) == _config_digest(other)
    changed = TrainConfig.model_validate({"loss": {**loss, "bins": 20}, "tica": {"lag": 5}})
    assert _config_digest(changed) != _config_digest(cfg)
    assert "base_wait_s" not in cfg.model_dump_json(exclude={"loss": {"base_wait_s", "base_steps"}})
