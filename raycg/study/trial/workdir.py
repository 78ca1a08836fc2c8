"""Node-local work directories of trial attempts, and the clean-up of those whose process died.

An attempt works in ``$TMPDIR/raycg-work-<user>/<trial>-<random>/`` (checkpoints go to the study's
storage; this is scratch). A normal end removes it; a killed worker (a crash, the OOM killer, a lost
node coming back) cannot, and its copy of the trial's model and trajectories would stay until the
node is wiped. So each directory has an owner record beside it (``<dir>.owner.json``: host, PID and
the PID's start time; beside, not inside, because the directory's contents travel with checkpoints)
and every new attempt on the node removes the directories whose owner is gone. A reused PID never keeps a
stale directory alive (the start time differs) and a live owner's directory is never touched; a
directory of another host (a /tmp shared between machines) or without an owner record is left alone.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import psutil

from raycg.cluster.processes import ProcRef

OWNER_SUFFIX = ".owner.json"


def work_root() -> Path:
    """``$TMPDIR/raycg-work-<user>`` (created, private to the user)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name (some containers): the UID
        user = str(os.getuid())
    root = Path(tempfile.gettempdir()) / f"raycg-work-{user}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def new_work_dir(trial_id: str, root: Path | None = None) -> Path:
    """A fresh work directory for an attempt at ``trial_id``, after removing the stale ones."""
    root = root or work_root()
    remove_stale(root)
    work = Path(tempfile.mkdtemp(prefix=f"{trial_id[:40]}-", dir=root))
    me = psutil.Process()
    owner = {"host": socket.gethostname(), "pid": me.pid, "create_time": me.create_time()}
    _owner_file(work).write_text(json.dumps(owner))
    return work


def remove_work_dir(work: Path) -> None:
    """Remove an attempt's work directory and its owner record (the attempt's normal end)."""
    shutil.rmtree(work, ignore_errors=True)
    _owner_file(work).unlink(missing_ok=True)


def _owner_file(work: Path) -> Path:
    return work.with_name(work.name + OWNER_SUFFIX)


def remove_stale(root: Path) -> list[Path]:
    """Remove the work directories under ``root`` whose owning process (on this host) has ended."""
    host, removed = socket.gethostname(), []
    for record in root.glob(f"*{OWNER_SUFFIX}") if root.is_dir() else ():
        try:
            owner = json.loads(record.read_text())
            if owner["host"] != host or ProcRef(int(owner["pid"]), float(owner["create_time"])).process():
                continue
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: leave it
            continue
        work = record.with_name(record.name[: -len(OWNER_SUFFIX)])
        shutil.rmtree(work, ignore_errors=True)
        record.unlink(missing_ok=True)
        removed.append(work)
    return removed
