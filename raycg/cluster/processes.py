"""Finding and ending the processes of one Ray on a shared machine, by PID, never by name.

Ray's per-node agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) rename themselves (their
command line no longer names the session's temp dir), ignore SIGTERM, and outlive a dead raylet:
after the raylet dies they log "Raylet is dead! Exiting" and then block forever reporting it to the
equally dead GCS (Ray 2.60). So nothing here matches on names. Instead:

- a local cluster is started in its own session (``start_new_session=True``); every process of it
  (head daemons, fake worker nodes, their agents and workers) keeps that session id, which
  :func:`session_processes` finds;
- a driver that starts its own Ray gets a :class:`Reaper`: a small watcher process in its own
  session that records the driver's descendants while the driver lives and ends the survivors
  when the driver exits, however it exits (``kill -9`` included: the watcher sees its pipe close).

:func:`end_processes` sends SIGTERM, waits, then SIGKILLs; it never signals this process or any
of its ancestors (``timeout 60 raycg cluster local down`` must not end its own ``timeout``).
A PID is only trusted together with its start time, so a reused PID is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

#: seconds between SIGTERM and SIGKILL
GRACE_S = 5.0


@dataclass(frozen=True)
class ProcRef:
    """A process identified by PID and start time (a reused PID does not match)."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, proc: psutil.Process) -> ProcRef:
        return cls(proc.pid, proc.create_time())

    def process(self) -> psutil.Process | None:
        """The live process, or None when it ended (or its PID now belongs to another process)."""
        try:
            p = psutil.Process(self.pid)
            if abs(p.create_time() - self.create_time) > 0.05 or p.status() == psutil.STATUS_ZOMBIE:
                return None
            return p
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None


def protected_pids() -> set[int]:
    """This process and its ancestors: never signalled."""
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


def session_processes(sid: int, *, started_after: float = 0.0) -> list[psutil.Process]:
    """Live processes of session ``sid`` started at or after ``started_after`` (a Unix time)."""
    out = []
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            if os.getsid(proc.pid) == sid and proc.info["create_time"] >= started_after - 1.0:
                out.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return out


def descendants(pids: Iterable[int]) -> list[psutil.Process]:
    """Live descendants of the given processes (not the processes themselves)."""
    out: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            for child in psutil.Process(pid).children(recursive=True):
                out[child.pid] = child
        except psutil.Error:
            continue
    return list(out.values())


def processes_naming(text: str) -> list[psutil.Process]:
    """Live processes whose command line or environment mentions ``text`` (e.g. a Ray temp dir)."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            env = proc.info.get("environ") or {}
        except psutil.Error:
            continue
        if text in cmd or env.get("RAYCG_LOCAL_CLUSTER_DIR") == text:
            out.append(proc)
    return out


def end_processes(procs: Iterable[psutil.Process | ProcRef], *, grace_s: float = GRACE_S) -> list[ProcRef]:
    """SIGTERM, wait up to ``grace_s``, SIGKILL what is left; return the processes that were signalled.

    This process and its ancestors are skipped, whatever the list says.
    """
    skip = protected_pids()
    live: dict[int, psutil.Process] = {}
    for item in procs:
        p = item.process() if isinstance(item, ProcRef) else item
        if p is not None and p.pid not in skip:
            live[p.pid] = p
    ended = []
    for p in live.values():
        try:
            ended.append(ProcRef.of(p))
            p.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(live.values()), timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    return ended


def is_ray_process(proc: psutil.Process) -> bool:
    """A Ray daemon, agent or worker (by its command line: ``ray::...`` or a file of the ray package)."""
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return cmd.startswith(("ray::", "ray-dashboard-")) or f"{os.sep}ray{os.sep}" in cmd


def alive(refs: Iterable[ProcRef]) -> list[ProcRef]:
    return [r for r in refs if r.process() is not None]


# --- the driver's reaper --------------------------------------------------------------------------------

class Reaper:
    """Ends what a driver's own Ray leaves behind once the driver is gone (or :meth:`close` is called).

    ``Reaper.start()`` spawns ``python -m raycg.cluster.processes --watch PID`` in a new session; it
    records the driver's descendants every ``interval_s`` (Ray's daemons, agents and workers) and,
    when its stdin closes (the driver exited, was killed, or called :meth:`close` after
    ``ray.shutdown()``), ends those still alive. ``RAYCG_NO_REAPER=1`` turns it off.
    """

    def __init__(self, proc: subprocess.Popen | None):
        self._proc = proc

    @classmethod
    def start(cls, *, interval_s: float = 0.5, grace_s: float = 3.0, log_path: str | None = None) -> Reaper:
        if os.environ.get("RAYCG_NO_REAPER") == "1":
            return cls(None)
        cmd = [sys.executable, "-m", "raycg.cluster.processes", "--watch", str(os.getpid()),
               "--interval", str(interval_s), "--grace", str(grace_s)]
        if log_path:
            cmd += ["--log", log_path]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
        return cls(proc)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def close(self, timeout_s: float = 30.0) -> None:
        """Tell the watcher the driver is done (after ``ray.shutdown()``); wait until it swept."""
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._proc = None


def _watch(driver_pid: int, interval_s: float, grace_s: float, log_path: str | None) -> int:
    """The watcher's loop: remember the driver's descendants until stdin closes, then end them."""
    import selectors

    try:
        driver = psutil.Process(driver_pid)
    except psutil.Error:
        return 0
    seen: dict[int, ProcRef] = {}
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    while True:
        try:
            for child in driver.children(recursive=True):
                if child.pid not in seen and is_ray_process(child):
                    seen[child.pid] = ProcRef.of(child)
        except psutil.Error:
            pass
        if sel.select(timeout=interval_s) and not sys.stdin.buffer.read1(4096):
            break  # EOF: the driver closed the pipe or died
    survivors = alive(seen.values())
    ended = end_processes(survivors, grace_s=grace_s)
    if log_path:
        with open(log_path, "a") as fh:
            fh.write(json.dumps({"driver": driver_pid, "time": time.time(), "tracked": len(seen),
                                 "ended": [r.pid for r in ended]}) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m raycg.cluster.processes", allow_abbrev=False)
    p.add_argument("--watch", type=int, required=True, help="driver PID")
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--grace", type=float, default=3.0)
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the driver; we end when it ends
    return _watch(a.watch, a.interval, a.grace, a.log)


if __name__ == "__main__":
    raise SystemExit(main())


