"""A study through a full disk and a killed driver, each followed by ``raycg study resume``.

One toy study (2 energy weights x 2 seeds), three drivers, each ``raycg study run|resume`` in its own
Unix session with its own Ray temp dir, as an operator runs them:

1. the disk fills up once a trial has finished (an ``LD_PRELOAD`` shim: ENOSPC for every write
   of every process of that driver, Ray and Tune included, under the study storage): the driver
   stops with one line naming the full storage and the resume command; Tune's experiment state
   is then cut in half (what a state save on a full disk leaves): nothing reads it again;
2. ``resume`` (the disk has room again) runs until one more trial has finished, then its driver
   is killed (``kill -9``, no clean-up); ``study status`` then says the driver is gone, nothing
   is "running"; ``STUDY/tune`` is deleted (Tune's experiment folder is disposable);
3. ``resume`` finishes the study.

After each driver: no process of its session or its Ray temp dir is left (Ray's agents rename
themselves and ignore SIGTERM; the driver's reaper ends them). At the end: every trial ok, the
trials finished before each fault untouched (same result.json bytes, one attempt), and the work
done twice bounded (epochs + chunks per trial, from the attempt records). Larger runs:
``benchmarks/fault_injection.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from raycg._testing.fault_injection import (
    DiskFull,
    build_enospc_shim,
    driver_env,
    leftovers_after,
    poll,
    redone_units,
    result_hashes,
    start_driver,
    study_processes,
    trial_attempts,
)

from .conftest import end_own_processes, read_json, short_tmpdir

pytestmark = pytest.mark.ray

EPOCHS, CHUNKS = 6, 2


def _done(study: Path) -> set[str]:
    return {p.parent.name for p in study.glob("trials/*/result.json")}


def _running_at(study: Path, step: int) -> list[str]:
    done = _done(study)
    return [p.parent.name for p in study.glob("trials/*/status.json")
            if p.parent.name not in done and ((read_json(p) or {}).get("step") or 0) >= step]


def test_full_disk_then_killed_driver_each_resumed(tmp_path, capsys):
    shim = build_enospc_shim(tmp_path / "shim")
    if shim is None:
        pytest.skip("no C compiler for the ENOSPC shim")
    storage = tmp_path / "disk"
    disk = DiskFull(shim, storage, tmp_path / "disk-is-full")
    spec = {"name": "faults", "pipeline": "toy", "storage": str(storage),
            "grid": {"energy_weights": [0.0, 1.0], "seeds": 2},
            "toy": {"epochs": EPOCHS, "epoch_s": 0.3, "chunks": CHUNKS, "chunk_s": 0.2},
            "resources": {"cpus": 1}, "concurrency": {"max_concurrent_trials": 2}, "retries": {"max_failures": 3}}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    study = storage / "faults"
    temps = [short_tmpdir("rcgf") for _ in range(3)]
    drivers: list[subprocess.Popen] = []
    try:
        # 1. the disk fills up once a trial has finished
        d1 = start_driver(["study", "run", str(spec_path)], disk.env(driver_env(temps[0])), tmp_path / "run1.log")
        drivers.append(d1)
        finished1 = poll(d1, lambda: result_hashes(study))
        busy1 = study_processes(d1.pid, temps[0])
        disk.fill()
        rc1 = d1.wait(timeout=300)
        log1 = (tmp_path / "run1.log").read_text()
        assert finished1 and rc1 == 1, log1[-3000:]
        last = log1.strip().splitlines()[-1]
        assert "the study storage is full" in last and f"raycg study resume {study}" in last, last
        assert busy1 and leftovers_after(d1.pid, temps[0]) == []
        states = sorted((study / "tune").glob("run-*/experiment_state-*.json"))
        for state in states[-1:]:  # what a state save cut short by the full disk leaves
            state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
        disk.free()

        # 2. resume (repairs the state); its driver is killed mid-trial, once one more trial has finished
        # when there is one to finish first (two trials left run side by side and may end together)
        d2 = start_driver(["study", "resume", str(study)], driver_env(temps[1]), tmp_path / "run2.log")
        drivers.append(d2)
        left = 4 - len(finished1)
        victim = poll(d2, lambda: _running_at(study, 2) and (left <= 2 or len(_done(study)) > len(finished1)))
        finished2 = result_hashes(study)
        busy2 = study_processes(d2.pid, temps[1])
        d2.kill()
        d2.wait()
        log2 = (tmp_path / "run2.log").read_text()
        assert victim and "repair" not in log2, log2[-3000:]
        assert busy2 and leftovers_after(d2.pid, temps[1]) == []
        shutil.rmtree(study / "tune")  # disposable: every run builds a fresh Tuner

        from raycg.cli import main

        capsys.readouterr()
        assert main(["study", "status", str(study)]) == 0
        status = capsys.readouterr().out
        assert "driver: gone" in status and " 0 running" in status, status

        # 3. resume to the end
        d3 = start_driver(["study", "resume", str(study)], driver_env(temps[2]), tmp_path / "run3.log")
        drivers.append(d3)
        rc3 = d3.wait(timeout=300)
        log3 = (tmp_path / "run3.log").read_text()
        assert rc3 == 0 and "trials: 4/4 done" in log3, log3[-3000:]
        assert leftovers_after(d3.pid, temps[2]) == []
    finally:
        for d in drivers:
            if d.poll() is None:
                d.kill()
                d.wait()
        for t in temps:
            end_own_processes(t)
            shutil.rmtree(t, ignore_errors=True)

    results = {p.parent.name: json.loads(p.read_text()) for p in study.glob("trials/*/result.json")}
    assert len(results) == 4 and all(r["status"] == "ok" for r in results.values())
    after = result_hashes(study)
    for before in (finished1, finished2):  # finished trials: same bytes, never run again
        assert all(after[t] == h for t, h in before.items())
    assert all(len(trial_attempts(study, t)) == 1 for t in finished1)
    attempts = {t: trial_attempts(study, t) for t in results}
    redone = {t: redone_units(a, EPOCHS, CHUNKS) for t, a in attempts.items()}
    # a checkpoint is stored before the attempt record says its step is done: a restart redoes at
    # most the unit it was in (not counted here) and nothing already reported
    trail = {t: [(x.get("restored_from"), x.get("last")) for x in a] for t, a in attempts.items()}
    assert all(redone[t] == 0 for t in attempts), (redone, trail)
    assert any(len(a) > 1 for a in attempts.values()), trail  # some trial was restarted
    for r in results.values():  # times summed over attempts
        assert r["runtime_s"] == pytest.approx(sum(a["runtime_s"] for a in r["attempt_times"]))
