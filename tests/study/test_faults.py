"""Faults without a Ray cluster: a full disk at start, a study that fails while being created,
incomplete checkpoints in a trial's folder, attempts' times, a dead driver in ``study status``, and
ending processes by PID (never an ancestor, a killed driver's leftovers by its reaper).

The full disk is an ``OSError(ENOSPC)`` injected into ``os.write`` for paths under the test's
storage (the probe's layer); the Ray runs with a real full disk are in ``test_faults_ray.py``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from raycg.errors import ConfigError
from raycg.study.driver import create_study, resume_study, run_study
from raycg.study.results import format_status, study_status
from raycg.study.spec import spec_from_any
from raycg.study.storage import Store, check_writable, is_storage_full
from raycg.study.trial import checkpoint as ckpt
from raycg.study.trial import run as trial_run
from raycg.study.trial import run_trial
from raycg.study.trial.session import TrialSession

TOY = {"epochs": 3, "epoch_s": 0.02, "chunks": 2, "chunk_s": 0.0}


def toy_spec(storage: Path, name: str = "faulty", **toy) -> dict:
    return {"name": name, "pipeline": "toy", "storage": str(storage),
            "grid": {"energy_weights": [0.0, 1.0], "seeds": 1}, "toy": {**TOY, **toy}}


def full_disk_under(monkeypatch, root: Path) -> None:
    """``os.write`` to any file under ``root`` fails with ENOSPC (what a full disk does)."""
    real = os.write

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(root)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.fixture(autouse=True)
def _no_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


# --- a full disk when the study starts --------------------------------------------------------------

def test_full_disk_at_start_is_one_line_exit_2_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from raycg.cli import main
    from raycg.study.driver import study as driver

    storage = tmp_path / "runs"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(toy_spec(storage)))
    full_disk_under(monkeypatch, tmp_path)
    monkeypatch.setattr(driver, "_run_grid", lambda *a, **k: pytest.fail("the study started on a full disk"))
    assert main(["study", "run", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write to" in err and "the disk is full" in err, err
    assert "free some space" in err
    assert not storage.exists()  # no empty storage or study directory left behind


def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=3 * 2**20))
    with pytest.raises(ConfigError, match=r"only 3 MiB free on the disk holding .* at least 64 MiB"):
        check_writable(str(tmp_path / "runs"))
    monkeypatch.setenv("RAYCG_MIN_FREE_MB", "1")
    check_writable(str(tmp_path / "runs"))  # the threshold is configurable; the probe writes for real
    assert not list((tmp_path / "runs").iterdir())  # the probe file is gone


def test_a_study_that_fails_while_being_created_leaves_no_directory(tmp_path, monkeypatch):
    from raycg.study.pipelines.toy import ToyPipeline

    def prepare_on_full_disk(self, spec, store, *, log):
        store.write_json("prepared/partial.json", {"x": 1})
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ToyPipeline, "prepare", prepare_on_full_disk)
    with pytest.raises(ConfigError, match="the disk filled up while creating the study"):
        run_study(toy_spec(tmp_path / "runs"), log=lambda s: None)
    assert (tmp_path / "runs").is_dir() and not (tmp_path / "runs" / "faulty").exists()


def test_a_rejected_dataset_leaves_no_study_behind(study_dataset, tmp_path, capsys):
    """``study prepare`` gates the dataset (require_valid, full) before spec.yaml or anything is written."""
    from raycg.cli import main
    from raycg.data import format as dfmt

    ds = dfmt.load(study_dataset)
    nm = dfmt.CGDataset(coords=ds.coords[:] / 10.0, forces=ds.forces[:], traj_offsets=ds.traj_offsets[:], meta=ds.meta)
    bad = dfmt.save(nm, tmp_path / "in_nm")
    spec = {"name": "nm", "dataset": str(bad), "storage": str(tmp_path / "runs"),
            "grid": {"energy_weights": [0.0], "seeds": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["study", "run", str(tmp_path / "spec.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: study prepare: dataset rejected:") and "nm" in err[-1], err
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "runs" / "nm").exists()


def test_storage_full_is_recognised_from_errors_and_their_text():
    assert is_storage_full(OSError(errno.ENOSPC, "x")) and is_storage_full(OSError(errno.EDQUOT, "x"))
    assert is_storage_full("errored after retries: OSError: [Errno 28] No space left on device")
    assert not is_storage_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_storage_full("training diverged at epoch 3")


# --- a trial's checkpoints in its own folder ---------------------------------------------------------

def _work(tmp: Path, step: int) -> Path:
    work = tmp / f"work{time.monotonic_ns()}"
    work.mkdir()
    (work / "state.json").write_text(json.dumps({"phase": "train", "step": step, "done": []}))
    (work / "toy_train.json").write_text(json.dumps({"epoch": step, "loss": 1.0, "history": [0.0] * step}))
    return work


def _restored_step(store: Store, tmp: Path) -> int | None:
    work = tmp / f"restore{time.monotonic_ns()}"
    work.mkdir()
    n = ckpt.TrialCheckpoints(store, "trials/w0_s0").restore_into(work)
    return None if n is None else json.loads((work / "state.json").read_text())["step"]


def test_checkpoints_are_numbered_pruned_and_restored_newest_complete_first(tmp_path):
    store = Store(str(tmp_path / "study"))
    assert _restored_step(store, tmp_path) is None  # nothing stored yet: start afresh
    cps = ckpt.TrialCheckpoints(store, "trials/w0_s0")
    assert [cps.save(_work(tmp_path, step)) for step in (1, 2, 3)] == [1, 2, 3]
    folder = tmp_path / "study" / "trials" / "w0_s0" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["000002", "000003"]  # the KEEP newest
    assert _restored_step(store, tmp_path) == 3
    # a later attempt numbers its checkpoints after the stored ones
    assert ckpt.TrialCheckpoints(store, "trials/w0_s0").save(_work(tmp_path, 4)) == 4

    (folder / "000004" / "toy_train.json").write_text("{")  # a copy cut short (an object store, a full disk)
    assert ckpt.problem(folder / "000004").endswith("toy_train.json has 1 of 58 bytes")
    assert _restored_step(store, tmp_path) == 3
    (folder / "000003" / ckpt.MANIFEST).unlink()  # no manifest: never trusted
    assert _restored_step(store, tmp_path) is None
    assert ckpt.problem(tmp_path / "nowhere").endswith("is missing")


# --- attempts' times ---------------------------------------------------------------------------------

class DyingSession(TrialSession):
    """Raises "node lost" after ``die_after`` reports (the trial's checkpoints are in its folder)."""

    in_tune = True

    def __init__(self, die_after: int | None = None):
        super().__init__(node_id="node-a")
        self.die_after, self.n = die_after, 0

    def report(self, row):
        self.n += 1
        if self.die_after is not None and self.n >= self.die_after:
            raise RuntimeError("node lost")


def test_runtime_and_stage_times_are_summed_over_attempts(tmp_path, monkeypatch):
    spec = spec_from_any(toy_spec(tmp_path, epochs=4, epoch_s=0.05))
    uri = tmp_path / "faulty"
    create_study(spec, str(uri), log=lambda s: None)
    first = DyingSession(die_after=3)  # dies after epoch 3 of 4
    monkeypatch.setattr(trial_run, "current_session", lambda: first)
    with pytest.raises(RuntimeError, match="node lost"):
        run_trial({"study": str(uri), "energy_weight": 0.0, "seed": 0})
    second = DyingSession()
    monkeypatch.setattr(trial_run, "current_session", lambda: second)
    run_trial({"study": str(uri), "energy_weight": 0.0, "seed": 0})

    res = json.loads((uri / "trials" / "w0_s0" / "result.json").read_text())
    a, b = res["attempt_times"]
    assert res["attempts"] == 2 and a["ended"] is None and b["ended"] == "ok"
    assert a["stage_times"]["train"] >= 3 * 0.05 and b["restored_from"] == {"phase": "train", "step": 3}
    assert res["runtime_s"] == pytest.approx(a["runtime_s"] + b["runtime_s"])
    assert res["stage_times"]["train"] == pytest.approx(a["stage_times"]["train"] + b["stage_times"]["train"])
    assert res["stage_times"]["train"] >= 4 * 0.05  # every epoch counted once, in the attempt that ran it


# --- a dead driver in `study status`, a live one refuses a second -------------------------------------

def _dead_pid() -> tuple[int, float]:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(p.pid).create_time()
    p.wait()
    return p.pid, created


def test_status_tells_an_interrupted_study_from_a_running_one(tmp_path):
    import socket

    spec = spec_from_any(toy_spec(tmp_path))
    uri = tmp_path / "faulty"
    create_study(spec, str(uri), log=lambda s: None)
    store = Store(str(uri))
    store.write_json("trials/w0_s0/status.json", {"phase": "train", "progress": 0.3, "updated_unix": time.time()})
    me = psutil.Process()
    driver = {"host": socket.gethostname(), "pid": me.pid, "create_time": me.create_time(), "heartbeat_s": 5.0,
              "started_unix": time.time(), "heartbeat_unix": time.time(), "state": "running"}
    store.write_json("driver.json", driver)
    st = study_status(str(uri))
    assert st["running"] == 1 and st["driver"]["alive"] and "driver: running (pid" in format_status(st)

    pid, created = _dead_pid()  # killed: it never wrote a final state, its PID is gone
    store.write_json("driver.json", {**driver, "pid": pid, "create_time": created})
    st = study_status(str(uri))
    assert st["running"] == 0 and st["interrupted"] == 2 and st["driver"]["alive"] is False
    text = format_status(st)
    assert "driver: gone (pid" in text and f"raycg study resume {uri}" in text and "interrupted (train, 30%)" in text
    assert "0 running, 0 failed, 2 pending" in text

    # on another host only the heartbeat tells: fresh = running, older than 30 s = gone
    store.write_json("driver.json", {**driver, "host": "elsewhere", "heartbeat_unix": time.time() - 2})
    assert study_status(str(uri))["running"] == 1
    store.write_json("driver.json", {**driver, "host": "elsewhere", "heartbeat_unix": time.time() - 40})
    assert study_status(str(uri))["interrupted"] == 2


def test_status_eta_reads_finished_phase_times_and_the_running_trials_attempt(tmp_path):
    import socket

    spec = spec_from_any(toy_spec(tmp_path))
    uri = tmp_path / "faulty"
    create_study(spec, str(uri), log=lambda s: None)
    store = Store(str(uri))
    done, running = store.read_json("study.json")["trial_ids"]
    now = time.time()
    store.write_json(f"trials/{done}/result.json", {"trial_id": done, "status": "ok", "runtime_s": 42.0,
                                                     "stage_times": {"train": 10.0, "simulate": 30.0, "score": 2.0}})
    store.write_json(f"trials/{running}/status.json", {"phase": "simulate", "progress": 0.7, "updated_unix": now - 1})
    store.write_json(f"trials/{running}/attempts/1-a.json", {"updated_unix": now - 1,
                                                              "stage_times": {"train": 10.0, "simulate": 10.0}})
    me = psutil.Process()
    store.write_json("driver.json", {"host": socket.gethostname(), "pid": me.pid, "create_time": me.create_time(),
                                     "heartbeat_s": 5.0, "heartbeat_unix": now, "state": "running"})
    st = study_status(str(uri))
    # the running trial entered its simulation 11 s ago; a simulation takes 30 s and a score 2 s
    assert st["running"] == 1 and st["eta_s"] == pytest.approx(19.0 + 2.0, abs=0.5)


def test_resume_refuses_to_run_next_to_a_live_driver(tmp_path):
    import socket

    spec = spec_from_any(toy_spec(tmp_path))
    uri = tmp_path / "faulty"
    create_study(spec, str(uri), log=lambda s: None)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        p = psutil.Process(other.pid)
        Store(str(uri)).write_json("driver.json", {
            "host": socket.gethostname(), "pid": p.pid, "create_time": p.create_time(), "heartbeat_s": 5.0,
            "heartbeat_unix": time.time(), "state": "running"})
        with pytest.raises(ConfigError, match=f"faulty is being run by the driver pid {p.pid}"):
            resume_study(str(uri), log=lambda s: None)
    finally:
        other.kill()
        other.wait()


# --- a saved Tune state that lags behind the storage ----------------------------------------------

# --- ending processes by PID -------------------------------------------------------------------------

def test_end_processes_never_signals_this_process_or_its_ancestors():
    from raycg.cluster.processes import end_processes

    child = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 60"])  # ignores SIGTERM, like Ray's agents
    try:
        me = psutil.Process()
        ended = end_processes([me, *me.parents(), psutil.Process(child.pid)], grace_s=0.5)
        assert [r.pid for r in ended] == [child.pid]
        assert not _alive(child.pid)  # SIGTERM was ignored: SIGKILL after the grace period
    finally:
        if child.poll() is None:
            child.kill()


DRIVER = """
import subprocess, sys, time
from raycg.cluster.processes import Reaper
reaper = Reaper.start(interval_s=0.2, grace_s=0.5)
agent = subprocess.Popen(["bash", "-c", "trap '' TERM; exec -a 'ray::FakeAgent' sleep 120"])
other = subprocess.Popen(["sleep", "120"])  # not Ray's: the reaper leaves it alone
print(reaper.pid, agent.pid, other.pid, flush=True)
time.sleep(120)
"""


def test_a_killed_drivers_ray_leftovers_are_ended_by_its_reaper(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    reaper, agent, other = (int(x) for x in driver.stdout.readline().split())
    try:
        time.sleep(1.0)  # the reaper has seen the agent
        driver.kill()  # kill -9: no clean-up of its own
        driver.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and psutil.pid_exists(agent) and \
                psutil.Process(agent).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.2)
        assert not _alive(agent), "the renamed, SIGTERM-ignoring agent survived its driver"
        assert _alive(other)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(reaper):
            time.sleep(0.2)
        assert not _alive(reaper)
    finally:
        for pid in (agent, other, reaper):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
