"""``raycg cluster local up/status/down`` as a user types them (the README's line): arguments reach
``ray start`` as whole numbers; a refused start is one line. ``ray start`` itself is faked here (a real
cluster is minutes of CPU); argument errors are in the bad-input corpus."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from raycg.cli import main

README_UP = "cluster local up --max-workers 2 --head-cpus 0 --idle-timeout-minutes 0.5"


class FakeRayStart(list):
    """Stands in for ``subprocess.run``: records each command, answers with ``returncode``/``stderr``."""

    returncode, stderr = 0, ""

    def __call__(self, cmd, *args, **kwargs):
        self.append(list(cmd))
        return subprocess.CompletedProcess(cmd, self.returncode, "", self.stderr)


@pytest.fixture
def fake_ray_start(monkeypatch):
    fake = FakeRayStart()
    monkeypatch.setattr(subprocess, "run", fake)
    return fake


def test_help_as_typed():
    p = subprocess.run([sys.executable, "-m", "raycg", "cluster", "local", "up", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "--head-cpus" in p.stdout and "whole CPUs" in p.stdout


def test_readme_line_reaches_ray_start_as_whole_numbers(tmp_path, fake_ray_start, capsys):
    argv = README_UP.split() + ["--temp-dir", str(tmp_path / "c")]
    assert main(argv) == 0
    (cmd,) = [c for c in fake_ray_start if "start" in c]
    assert "--num-cpus=0" in cmd and "--head" in cmd, cmd
    out = capsys.readouterr().out
    assert "local cluster up: address 127.0.0.1:" in out and "cluster local down --temp-dir" in out
    cfg = yaml.safe_load((tmp_path / "c" / "autoscaling.yaml").read_text())
    worker = cfg["available_node_types"]["ray.worker.gpu"]["resources"]
    assert worker == {"CPU": 1, "GPU": 1} and all(type(v) is int for v in worker.values())
    assert cfg["idle_timeout_minutes"] == 0.5 and cfg["max_workers"] == 2
    state = json.loads((tmp_path / "c" / "raycg_local_cluster.json").read_text())
    assert state["address"].startswith("127.0.0.1:")
    assert main(["cluster", "local", "down", "--temp-dir", str(tmp_path / "c")]) == 0
    assert "ended 0 process(es)" in capsys.readouterr().out
    assert not (tmp_path / "c" / "raycg_local_cluster.json").exists()


def test_refused_ray_start_is_one_line_exit_1(tmp_path, fake_ray_start, capsys):
    fake_ray_start.returncode, fake_ray_start.stderr = 1, "usage...\nError: Invalid value for '--port'"
    assert main(["cluster", "local", "up", "--temp-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ray start failed:") and "--port" in err[0], err
    assert not (tmp_path / "c" / "raycg_local_cluster.json").exists()
