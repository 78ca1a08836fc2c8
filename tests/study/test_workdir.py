"""Trial work directories: a killed attempt's scratch is removed by the next attempt on the node."""

import json
import os
import socket
import subprocess
import sys

import psutil

from raycg.study.trial.workdir import OWNER_SUFFIX, new_work_dir, remove_stale, remove_work_dir


def _dir_owned_by(root, name, **owner):
    work = root / name
    (work / "train").mkdir(parents=True)
    (work / "train" / "model.pt").write_bytes(b"x" * 100)
    (root / f"{name}{OWNER_SUFFIX}").write_text(json.dumps(owner))
    return work


def test_stale_directories_go_and_live_or_foreign_ones_stay(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = {"pid": child.pid, "create_time": psutil.Process(child.pid).create_time()}
    child.kill()
    child.wait()
    me = psutil.Process()
    host = socket.gethostname()
    killed = _dir_owned_by(tmp_path, "w0_s0-killed", host=host, **dead)
    reused = _dir_owned_by(tmp_path, "w0_s1-reused", host=host, pid=me.pid, create_time=me.create_time() - 100.0)
    live = _dir_owned_by(tmp_path, "w1_s0-live", host=host, pid=me.pid, create_time=me.create_time())
    foreign = _dir_owned_by(tmp_path, "w1_s1-other-host", host=host + "-elsewhere", **dead)
    unowned = tmp_path / "w1_s2-no-record"
    unowned.mkdir()

    removed = remove_stale(tmp_path)

    assert sorted(removed) == sorted([killed, reused])
    assert not killed.exists() and not reused.exists()
    assert not (tmp_path / f"w0_s0-killed{OWNER_SUFFIX}").exists()
    assert live.is_dir() and foreign.is_dir() and unowned.is_dir()
    assert (live / "train" / "model.pt").read_bytes() == b"x" * 100


def test_new_work_dir_records_its_owner_beside_it_and_sweeps_first(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = {"pid": child.pid, "create_time": psutil.Process(child.pid).create_time()}
    child.kill()
    child.wait()
    stale = _dir_owned_by(tmp_path, "w0_s0-old", host=socket.gethostname(), **dead)

    work = new_work_dir("w0_s0", tmp_path)

    assert not stale.exists() and work.is_dir() and work.parent == tmp_path and work.name.startswith("w0_s0-")
    assert list(work.iterdir()) == []  # the record is beside the directory: checkpoints of it never carry it
    owner = json.loads((tmp_path / f"{work.name}{OWNER_SUFFIX}").read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert remove_stale(tmp_path) == []  # its owner (this process) lives
    remove_work_dir(work)
    assert list(tmp_path.iterdir()) == []
