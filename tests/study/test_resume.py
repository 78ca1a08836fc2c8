"""The driver killed mid-study: ``raycg study resume`` finishes it and leaves finished trials alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import end_own_processes, short_tmpdir
from .conftest import read_json as _read
from .conftest import sha256 as _sha

pytestmark = pytest.mark.ray


def _env(temp: Path) -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1", RAYCG_RAY_TEMP_DIR=str(temp),
               RAYCG_RAY_NUM_CPUS="2")
    env.pop("RAY_ADDRESS", None)
    return env


def test_killed_driver_then_resume(tmp_path, monkeypatch, capsys):
    spec = {
        "name": "killed", "pipeline": "toy", "storage": str(tmp_path),
        "grid": {"energy_weights": [0.0, 1.0], "seeds": 2},
        "toy": {"epochs": 5, "epoch_s": 0.4, "chunks": 2, "chunk_s": 0.2},
        "resources": {"cpus": 1}, "concurrency": {"max_concurrent_trials": 2},
    }
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    study = tmp_path / "killed"
    temps = [short_tmpdir("rcgk"), short_tmpdir("rcgr")]
    try:
        with open(tmp_path / "run.log", "w") as log:
            driver = subprocess.Popen([sys.executable, "-m", "raycg", "study", "run", str(spec_path)],
                                      stdout=log, stderr=subprocess.STDOUT, env=_env(temps[0]))
            finished: dict[str, str] = {}
            running = None
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and driver.poll() is None:
                time.sleep(0.2)
                done = {p.parent.name for p in study.glob("trials/*/result.json")}
                busy = [p.parent.name for p in study.glob("trials/*/status.json")
                        if p.parent.name not in done and ((_read(p) or {}).get("step") or 0) >= 2]
                if len(done) >= 2 and busy:
                    finished = {t: _sha(study / "trials" / t / "result.json") for t in done}
                    running = busy[0]
                    os.kill(driver.pid, signal.SIGKILL)  # the driver dies without any cleanup
                    driver.wait()
                    break
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        assert running is not None, (tmp_path / "run.log").read_text()[-3000:]
        end_own_processes(temps[0])  # whatever the killed driver's local Ray left behind
        assert 2 <= len(finished) < 4

        from raycg.study import study_status

        st = study_status(str(study))  # read from the storage alone: no Ray
        assert st["n_trials"] == 4 and st["done"] >= len(finished) and st["done"] < 4

        # `raycg study resume`, in this process (saves a Python start-up), on a fresh local Ray
        from raycg.cli import main

        monkeypatch.setenv("RAYCG_RAY_TEMP_DIR", str(temps[1]))
        monkeypatch.setenv("RAYCG_RAY_NUM_CPUS", "2")
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        assert main(["study", "resume", str(study)]) == 0
        captured = capsys.readouterr()
        assert "trials: 4/4 done" in captured.err  # progress on stderr
        assert "verdict:" in captured.out and "report:" in captured.out  # results on stdout
    finally:
        for t in temps:
            end_own_processes(t)

    results = {p.parent.name: _read(p) for p in study.glob("trials/*/result.json")}
    assert len(results) == 4 and all(r["status"] == "ok" for r in results.values())
    for tid, sha in finished.items():  # finished trials: same bytes, never started again
        assert _sha(study / "trials" / tid / "result.json") == sha
        assert len(list((study / "trials" / tid / "attempts").glob("*.json"))) == 1
    # the trial that was running when the driver died ran again (from its checkpoint if Tune had saved it)
    assert len(list((study / "trials" / running / "attempts").glob("*.json"))) >= 2
    assert (study / "results" / "report.md").is_file()
