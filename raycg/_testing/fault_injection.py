"""Rehearsing faults on a study: a disk that fills up, drivers and nodes that die, and what they cost.

Used by ``tests/study/test_faults_ray.py``, ``tests/cluster/test_faults_cluster.py`` and
``benchmarks/fault_injection.py``; usable by an operator who wants to see a study survive them.

- :func:`build_enospc_shim` compiles a tiny ``LD_PRELOAD`` library (needs a C compiler): every
  process started with :meth:`DiskFull.env` (the driver, Ray, Tune, the trials) gets ENOSPC for
  writes under one directory while a flag file exists, as from a full disk: a write that fits
  partly is cut short, the next one fails. No root, no loop device, nothing outside those processes.
- :func:`start_driver` runs ``raycg study ...`` as an operator does, in its own Unix session with
  its own Ray temp dir (:func:`driver_env`); :func:`study_processes` lists the processes of that
  session and temp dir (before/after counts of leaked processes; :func:`leftovers_after` waits a
  bounded time for the reaper); :func:`redone_units` measures the work a trial did twice from its
  attempt records; :func:`result_hashes` fingerprints finished trials.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ENOSPC_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/uio.h>

/* ENOSPC for writes to files under $RAYCG_FAULT_ENOSPC_DIR while $RAYCG_FAULT_ENOSPC_FLAG exists. */
static int full_for(int fd) {
    const char *flag = getenv("RAYCG_FAULT_ENOSPC_FLAG");
    const char *dir = getenv("RAYCG_FAULT_ENOSPC_DIR");
    if (!flag || !dir || access(flag, F_OK) != 0) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strncmp(path, dir, strlen(dir)) == 0;
}

#define REAL(name, ret, ...) static ret (*real)(__VA_ARGS__) = 0; \
    if (!real) real = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL("write", ssize_t, int, const void *, size_t);
    if (count > 0 && full_for(fd)) {
        if (count >= 64) return real(fd, buf, count / 2);  /* the last blocks: a short write */
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, count);
}
ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
    REAL("pwrite", ssize_t, int, const void *, size_t, off_t);
    if (count > 0 && full_for(fd)) { errno = ENOSPC; return -1; }
    return real(fd, buf, count, off);
}
ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off) {
    REAL("pwrite64", ssize_t, int, const void *, size_t, off_t);
    if (count > 0 && full_for(fd)) { errno = ENOSPC; return -1; }
    return real(fd, buf, count, off);
}
ssize_t writev(int fd, const struct iovec *iov, int n) {
    REAL("writev", ssize_t, int, const struct iovec *, int);
    if (n > 0 && full_for(fd)) { errno = ENOSPC; return -1; }
    return real(fd, iov, n);
}
ssize_t sendfile(int out, int in, off_t *off, size_t count) {
    REAL("sendfile", ssize_t, int, int, off_t *, size_t);
    if (count > 0 && full_for(out)) { errno = ENOSPC; return -1; }
    return real(out, in, off, count);
}
ssize_t sendfile64(int out, int in, off_t *off, size_t count) {
    REAL("sendfile64", ssize_t, int, int, off_t *, size_t);
    if (count > 0 && full_for(out)) { errno = ENOSPC; return -1; }
    return real(out, in, off, count);
}
ssize_t copy_file_range(int in, off_t *oin, int out, off_t *oout, size_t len, unsigned int flags) {
    REAL("copy_file_range", ssize_t, int, off_t *, int, off_t *, size_t, unsigned int);
    if (len > 0 && full_for(out)) { errno = ENOSPC; return -1; }
    return real(in, oin, out, oout, len, flags);
}
int fallocate(int fd, int mode, off_t off, off_t len) {
    REAL("fallocate", int, int, int, off_t, off_t);
    if (full_for(fd)) { errno = ENOSPC; return -1; }
    return real(fd, mode, off, len);
}
int posix_fallocate(int fd, off_t off, off_t len) {
    REAL("posix_fallocate", int, int, off_t, off_t);
    if (full_for(fd)) return ENOSPC;
    return real(fd, off, len);
}
"""


def build_enospc_shim(out_dir: str | os.PathLike) -> Path | None:
    """Compile the ENOSPC ``LD_PRELOAD`` library into ``out_dir``; None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src, lib = out / "raycg_enospc.c", out / "raycg_enospc.so"
    src.write_text(ENOSPC_SHIM_C)
    done = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"],
                          capture_output=True, text=True)
    return lib if done.returncode == 0 and lib.is_file() else None


@dataclass
class DiskFull:
    """A directory that is "full" while :meth:`fill` is in effect, for processes started with :meth:`env`."""

    shim: Path
    directory: Path
    flag: Path

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        preload = " ".join(p for p in (str(self.shim), env.get("LD_PRELOAD", "")) if p)
        env.update(LD_PRELOAD=preload, RAYCG_FAULT_ENOSPC_DIR=str(self.directory),
                   RAYCG_FAULT_ENOSPC_FLAG=str(self.flag))
        return env

    def fill(self) -> None:
        self.flag.touch()

    def free(self) -> None:
        self.flag.unlink(missing_ok=True)

    @property
    def full(self) -> bool:
        return self.flag.exists()


def driver_env(temp_dir: str | os.PathLike, base: dict[str, str] | None = None, *, cpus: int = 2) -> dict[str, str]:
    """Environment of a driver that starts its own local Ray under ``temp_dir`` (auth off, ``cpus`` CPUs)."""
    env = dict(os.environ if base is None else base)
    env.update(RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1", RAYCG_RAY_TEMP_DIR=str(temp_dir),
               RAYCG_RAY_NUM_CPUS=str(cpus))
    env.pop("RAY_ADDRESS", None)
    return env


def start_driver(args: list[str], env: dict[str, str], log: str | os.PathLike) -> subprocess.Popen:
    """``python -m raycg ARGS`` in its own Unix session (its session id is its PID), output to ``log``."""
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "raycg", *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def poll(proc: subprocess.Popen, until: Callable[[], Any], timeout_s: float = 300.0) -> Any:
    """Call ``until()`` every 0.2 s while ``proc`` runs; its first truthy value, or None (exited / timed out)."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        got = until()
        if got:
            return got
        time.sleep(0.2)
    return None


def leftovers_after(session_id: int, temp_dir: str | os.PathLike | None,
                    timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Processes of a finished driver's session or Ray temp dir still alive after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = study_processes(session_id, temp_dir)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = study_processes(session_id, temp_dir)
    return left


def study_processes(session_id: int | None = None, temp_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Live processes of a Unix session and/or naming a Ray temp dir: ``[{"pid", "name"}]``."""
    from raycg.cluster.processes import processes_naming, session_processes

    found: dict[int, psutil.Process] = {}
    if session_id:
        found.update({p.pid: p for p in session_processes(session_id)})
    if temp_dir:
        found.update({p.pid: p for p in processes_naming(str(temp_dir))})
    out = []
    for pid, p in sorted(found.items()):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append({"pid": pid, "name": p.name()})
        except psutil.Error:
            continue
    return out


def result_hashes(study: Path) -> dict[str, str]:
    """sha256 of every finished trial's ``result.json``."""
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(study.glob("trials/*/result.json"))}


def _units(pos: dict[str, Any] | None, epochs: int, chunks: int) -> int:
    """Work done up to a (phase, step) of a trial, in epochs + chunks (+1 for the score)."""
    if not pos or not pos.get("phase"):
        return 0
    phase, step = pos["phase"], pos.get("step")
    if phase == "train":
        return int(step) if step is not None else epochs
    if phase == "simulate":
        return epochs + (int(step) if step is not None else chunks)
    return epochs + chunks


def redone_units(attempts: list[dict[str, Any]], epochs: int, chunks: int) -> int:
    """Epochs + chunks a trial ran again: for each attempt after the first, how far the previous one got
    (its last report) beyond where this one restarted (its restored checkpoint)."""
    attempts = sorted(attempts, key=lambda a: a.get("started_unix") or 0.0)
    redone = 0
    for prev, cur in zip(attempts, attempts[1:], strict=False):
        redone += max(0, _units(prev.get("last"), epochs, chunks) - _units(cur.get("restored_from"), epochs, chunks))
    return redone


def trial_attempts(study: Path, trial_id: str) -> list[dict[str, Any]]:
    import json

    out = []
    for p in sorted((study / "trials" / trial_id / "attempts").glob("*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return out
