"""Faults without a Ray cluster (issue 14): a full disk at start, a study that fails while being created,
a truncated Tune state and its repair, incomplete checkpoints, attempts' times, a dead driver in
``study status``, Tune's clean-up traceback, and ending processes by PID (never an ancestor, a
killed driver's leftovers by its reaper).

The full disk is an ``OSError(ENOSPC)`` injected into ``os.write`` for paths under the test's
storage (the probe's layer); the Ray runs with a real full disk are in ``test_faults_ray.py``.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from raycg.errors import ConfigError
from raycg.study import tune_state
from raycg.study.driver import create_study, resume_study, run_study
from raycg.study.results import format_status, study_status
from raycg.study.spec import spec_from_any
from raycg.study.storage import Store, check_writable, is_storage_full
from raycg.study.trial import checkpoint as ckpt
from raycg.study.trial import run as trial_run
from raycg.study.trial import run_trial
from raycg.study.trial.session import TrialSession, TuneSession

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


# --- a truncated Tune state and its repair -----------------------------------------------------------

def _tune_dir(study: Path, *, truncate: bool) -> Path:
    tune = study / "tune"
    tune.mkdir(parents=True)
    blob = pickle.dumps({"param_space": {"energy_weight": [0.0, 1.0]}})
    (tune / "tuner.pkl").write_bytes(blob[: len(blob) // 2] if truncate else blob)
    trials = [[json.dumps({"config": {"study": str(study), "energy_weight": w, "seed": 0}}), "{}"] for w in (0.0, 1.0)]
    state = json.dumps({"trial_data": trials, "runner_data": {}, "stats": {}})
    (tune / "experiment_state-2026-01-01_00-00-00.json").write_text(state[:300] if truncate else state)
    return tune


def _checkpoint(path: Path, step: int, *, truncate: bool = False) -> Path:
    path.mkdir(parents=True)
    (path / "state.json").write_text(json.dumps({"phase": "train", "step": step, "done": []}))
    (path / "toy_train.json").write_text(json.dumps({"epoch": step, "loss": 1.0, "history": []}))
    ckpt.write_manifest(path)
    if truncate:
        (path / "toy_train.json").write_text("{")
    return path


def test_truncated_tune_state_is_detected_without_unpickling(tmp_path):
    good = tmp_path / "good"
    _tune_dir(good, truncate=False)
    assert tune_state.tune_state_problems(Store(str(good))) == []
    bad = tmp_path / "bad"
    _tune_dir(bad, truncate=True)
    problems = tune_state.tune_state_problems(Store(str(bad)))
    assert any("tuner.pkl is truncated or corrupt" in p for p in problems), problems
    assert any("experiment_state-2026-01-01_00-00-00.json is truncated or corrupt" in p for p in problems)
    assert tune_state.pickle_problem(b"") == "empty" and tune_state.pickle_problem(pickle.dumps([1])) is None
    # a state whose trials lost their grid values is what crashed resume with KeyError: 'energy_weight'
    odd = tmp_path / "odd"
    tune = _tune_dir(odd, truncate=False)
    (tune / "experiment_state-2026-01-01_00-00-01.json").write_text(
        json.dumps({"trial_data": [[json.dumps({"config": {"study": "x"}}), "{}"]]}))
    assert tune_state.tune_state_problems(Store(str(odd))) == [
        "tune/experiment_state-2026-01-01_00-00-01.json: trial 0 has no energy_weight, seed in its config"]
    assert tune_state.tune_state_problems(Store(str(tmp_path / "none"))) == []


def test_repair_keeps_finished_trials_and_salvages_the_newest_complete_checkpoint(tmp_path):
    spec = spec_from_any(toy_spec(tmp_path))
    uri = tmp_path / "faulty"
    create_study(spec, str(uri), log=lambda s: None)
    run_trial({"study": str(uri), "energy_weight": 0.0, "seed": 0})  # finished before the disk filled
    done = (uri / "trials" / "w0_s0" / "result.json").read_bytes()
    tune = _tune_dir(uri, truncate=True)
    _checkpoint(tune / "w1_s0" / "checkpoint_000001", 1)
    _checkpoint(tune / "w1_s0" / "checkpoint_000002", 2, truncate=True)  # the copy the full disk cut short
    logs: list[str] = []
    store = Store(str(uri))
    assert tune_state.repair_study(store, ["w0_s0", "w1_s0"], ("energy_weight", "seed"), log=logs.append)
    assert not tune.exists()
    recovered = uri / "trials" / "w1_s0" / tune_state.RECOVERED
    assert json.loads((recovered / "state.json").read_text())["step"] == 1 and ckpt.problem(recovered) is None
    assert (uri / "trials" / "w0_s0" / "result.json").read_bytes() == done
    record = json.loads((uri / "repairs.json").read_text())[-1]
    assert record["recovered_checkpoints"] == {"w1_s0": "checkpoint_000001"}
    assert "rebuilt from the trials' records: 1 finished kept, 1 of 1 unfinished continue" in logs[-1]
    assert not tune_state.repair_study(store, ["w0_s0", "w1_s0"], ("energy_weight", "seed"), log=logs.append)

    # the trial continues from the salvaged checkpoint (no Tune checkpoint exists any more) and cleans it up
    run_trial({"study": str(uri), "energy_weight": 1.0, "seed": 0})
    res = json.loads((uri / "trials" / "w1_s0" / "result.json").read_text())
    assert res["status"] == "ok" and res["restored_from"]["step"] == 1
    assert res["attempt_times"][-1]["stage_times"]["train"] > 0 and not recovered.exists()


def test_trials_failed_only_by_a_full_disk_run_again(tmp_path):
    store = Store(str(tmp_path))
    store.write_json("trials/a/result.json", {"status": "failed", "error": "errored after retries: OSError: "
                                                                            "[Errno 28] No space left on device"})
    store.write_json("trials/b/result.json", {"status": "failed", "error": "training diverged at epoch 2"})
    assert tune_state.release_storage_failures(store, ["a", "b"], log=lambda s: None) == ["a"]
    assert not store.exists("trials/a/result.json") and store.listdir("trials/a/superseded")
    assert store.exists("trials/b/result.json")


# --- incomplete checkpoints on restore ---------------------------------------------------------------

class _LocalFS:  # stands in for pyarrow's LocalFileSystem (only its name is looked at)
    pass


_LocalFS.__name__ = "LocalFileSystem"


class _FakeTune:
    def __init__(self, path: Path | None):
        self.path = path

    def get_checkpoint(self):
        if self.path is None:
            return None
        return type("Ckpt", (), {"path": str(self.path), "filesystem": _LocalFS()})()


def test_restore_takes_the_newest_complete_checkpoint(tmp_path):
    trial = tmp_path / "tune" / "w0_s0"
    _checkpoint(trial / "checkpoint_000001", 1)
    _checkpoint(trial / "checkpoint_000002", 2)
    _checkpoint(trial / "checkpoint_000003", 3, truncate=True)
    recovered = _checkpoint(tmp_path / "recovered", 7)

    def restore(offered, fallback=None):
        work = tmp_path / f"work{time.monotonic_ns()}"
        work.mkdir()
        source = TuneSession(_FakeTune(offered), "node").restore_into(work, fallback=fallback)
        step = json.loads((work / "state.json").read_text())["step"] if source else None
        return source, step

    assert restore(trial / "checkpoint_000002") == ("tune", 2)
    assert restore(trial / "checkpoint_000003") == ("older", 2)  # truncated by a full disk
    assert restore(trial / "checkpoint_000009") == ("older", 2)  # already deleted by Tune's clean-up
    assert restore(trial / "checkpoint_000001", recovered) == ("newer", 2)  # the saved state lagged
    for p in trial.iterdir():  # nothing usable left in Tune's directory
        (p / "state.json").write_text("")
        (p / ckpt.MANIFEST).unlink()
    assert restore(trial / "checkpoint_000002", recovered) == ("recovered", 7)
    assert restore(trial / "checkpoint_000002") == (None, None)
    assert restore(None) == (None, None)


# --- attempts' times ---------------------------------------------------------------------------------

class DyingSession(TrialSession):
    """Hands back ``restore_from``; records checkpoints; raises "node lost" after ``die_after`` reports."""

    in_tune = True

    def __init__(self, tmp: Path, restore_from: Path | None = None, die_after: int | None = None):
        super().__init__(node_id="node-a")
        self.tmp, self.restore_from, self.die_after, self.n = tmp, restore_from, die_after, 0
        self.last: Path | None = None

    def restore_into(self, work, fallback=None):
        if self.restore_from is None:
            return None
        import shutil

        shutil.copytree(self.restore_from, work, dirs_exist_ok=True)
        return "tune"

    def report(self, row, checkpoint_dir=None):
        import shutil

        self.n += 1
        if checkpoint_dir is not None:
            self.last = self.tmp / f"ckpt{self.n}"
            shutil.copytree(checkpoint_dir, self.last)
        if self.die_after is not None and self.n >= self.die_after:
            raise RuntimeError("node lost")


def test_runtime_and_stage_times_are_summed_over_attempts(tmp_path, monkeypatch):
    spec = spec_from_any(toy_spec(tmp_path, epochs=4, epoch_s=0.05))
    uri = tmp_path / "faulty"
    create_study(spec, str(uri), log=lambda s: None)
    first = DyingSession(tmp_path, die_after=3)  # dies after epoch 3 of 4
    monkeypatch.setattr(trial_run, "current_session", lambda: first)
    with pytest.raises(RuntimeError, match="node lost"):
        run_trial({"study": str(uri), "energy_weight": 0.0, "seed": 0})
    second = DyingSession(tmp_path / "b", restore_from=first.last)
    (tmp_path / "b").mkdir()
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

def test_checkpoints_a_lagging_state_lists_are_recreated_for_tunes_cleanup(tmp_path):
    """Tune keeps each trial's checkpoint list as a hex-encoded cloudpickle blob in experiment_state."""
    tune = tmp_path / "study" / "tune"
    listed = [f"{tune}/w0_s0/checkpoint_00000{i}" for i in (4, 5)]
    blob = pickle.dumps({"checkpoints": listed}).hex()
    trial = json.dumps({"checkpoint_manager": {"_type": "CLOUDPICKLE_FALLBACK", "value": blob}})
    (tune / "w0_s0").mkdir(parents=True)
    (tune / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": [["{}", trial]]}))
    _checkpoint(tune / "w0_s0" / "checkpoint_000005", 5)
    _checkpoint(tune / "w0_s0" / "checkpoint_000007", 7)  # the trial went on after the last save
    raw = (tune / "experiment_state-2026-01-01_00-00-00.json").read_bytes()
    assert tune_state.referenced_checkpoints(raw, str(tune)) == {("w0_s0", "checkpoint_000004"),
                                                                  ("w0_s0", "checkpoint_000005")}
    logs: list[str] = []
    assert tune_state.recreate_missing_checkpoints(Store(str(tmp_path / "study")), log=logs.append) == [
        "w0_s0/checkpoint_000004"]
    assert (tune / "w0_s0" / "checkpoint_000004").is_dir() and "lags behind the storage" in logs[0]
    assert ckpt.problem(tune / "w0_s0" / "checkpoint_000004") is not None  # never restored from


# --- ending processes by PID -------------------------------------------------------------------------

def test_end_processes_never_signals_this_process_or_its_ancestors():
    from raycg.study.processes import end_processes

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
from raycg.study.processes import Reaper
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
