"""cluster.yaml and the one-machine autoscaling config pass Ray's own config validation."""

from pathlib import Path

import pytest
import yaml

from raycg.cluster.local_cluster import fake_cluster_config, validate_cluster_config
from raycg.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def test_aws_cluster_yaml_passes_ray_validation():
    cfg = validate_cluster_config(ROOT / "cluster.yaml")
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "the head must run no trials"
    workers = [t for name, t in types.items() if name != cfg["head_node_type"]]
    assert workers and all(t["min_workers"] == 0 for t in workers), "GPU workers autoscale from 0"
    assert all(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in workers)
    assert all("IamInstanceProfile" in t["node_config"] for t in workers), "workers must write s3:// storage"


def test_aws_cluster_yaml_is_safe():
    raw = (ROOT / "cluster.yaml").read_text()
    cfg = yaml.safe_load(raw)
    start = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start, "dashboard must bind to localhost (use `ray dashboard`)"
    assert "RAY_AUTH_MODE=token" in start
    assert "RAY_AUTH_MODE=token" in " ".join(cfg["worker_start_ray_commands"])
    assert "0.0.0.0" not in raw
    assert "ray " + "stop" not in raw  # (split so repository greps for the command stay clean)
    assert cfg["docker"]["image"].startswith("rayproject/ray:2.") and "latest" not in cfg["docker"]["image"]


def test_fake_multinode_config_passes_ray_validation():
    cfg = fake_cluster_config(23456, max_workers=3, gpus_per_worker=1)
    validate_cluster_config(cfg)
    assert cfg["provider"]["gcs_address"] == "127.0.0.1:23456"


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda c: c["available_node_types"]["ray.worker.gpu"].update(min_workerz=1), "min_workerz"),
        (lambda c: c.pop("head_node_type"), "head_node_type"),
        (lambda c: c.update(max_workers="many"), "many"),
    ],
)
def test_invalid_configs_give_one_line(mutate, match):
    cfg = fake_cluster_config(23456)
    mutate(cfg)
    with pytest.raises(InputError, match=match) as err:
        validate_cluster_config(cfg)
    assert "\n" not in str(err.value)


def test_a_ray_older_than_the_pin_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """`raycg cluster local up` and a study's Ray start-up refuse a Ray below ray_compat.MIN_RAY (exit 2)."""
    import re

    from raycg import ray_compat
    from raycg.cli import main
    from raycg.study.driver.tuner import ensure_ray

    pin = re.search(r'"ray\[[^"]*"', (ROOT / "pyproject.toml").read_text()).group(0)
    lo = ".".join(map(str, ray_compat.MIN_RAY))
    assert f">={lo}," in pin and ray_compat.MIN_RAY >= (2, 52), pin  # token auth (README) needs 2.52
    ray_compat.require_min_ray()  # the installed Ray is in range
    monkeypatch.setattr(ray_compat, "ray_version", lambda: (ray_compat.MIN_RAY[0], ray_compat.MIN_RAY[1] - 1))
    assert main(["cluster", "local", "up", "--temp-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ray ") and f"older than {lo}" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "c").exists()  # refused before anything was started or written
    with pytest.raises(InputError, match=f"older than {lo}"):
        ensure_ray(None, log=print)
