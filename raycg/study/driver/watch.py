"""What the driver watches while Tune runs: its own liveness record and the storage.

- :class:`DriverHeartbeat` keeps ``STUDY/driver.json`` (host, PID, start time, a heartbeat every few
  seconds, the final state) so that ``raycg study status`` tells a running study from one whose
  driver is gone (:func:`raycg.study.results.status.driver_state`), and a second driver refuses
  to run a study that a live one is running.
- :class:`StorageGuard` (a Tune callback) stops the run with :class:`StorageFull` once the storage
  is full (a probe write fails with ENOSPC), instead of letting Tune retry every trial into the
  full disk and mark them failed; the study stays resumable (``raycg study resume``: each trial
  continues from its newest complete checkpoint).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import psutil
from ray import tune

from raycg.study.storage import Store, free_bytes, is_storage_full, probe_write

DRIVER_FILE = "driver.json"
HEARTBEAT_S = 5.0


class DriverHeartbeat:
    """Writes ``STUDY/driver.json`` now and every ``interval_s`` until :meth:`stop`."""

    def __init__(self, store: Store, *, interval_s: float = HEARTBEAT_S):
        self.store, self.interval_s = store, interval_s
        me = psutil.Process()
        self.record = {"host": socket.gethostname(), "pid": me.pid, "create_time": me.create_time(),
                       "started_unix": time.time(), "heartbeat_s": interval_s, "state": "running"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="raycg-driver-heartbeat", daemon=True)

    def start(self) -> DriverHeartbeat:
        self._beat()
        self._thread.start()
        return self

    def _beat(self) -> None:
        self.record["heartbeat_unix"] = time.time()
        try:
            self.store.write_json(DRIVER_FILE, self.record)
        except OSError:  # a full disk must not kill the driver; the guard reports it
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._beat()

    def stop(self, state: str) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.interval_s)
        self.record["state"] = state
        self._beat()


class StorageFull(RuntimeError):
    """The study storage is full: the run stopped, resumable once there is space."""


class StorageGuard(tune.Callback):
    """Stops the Tune run (raises :class:`StorageFull`) when a write to the study storage fails for lack of space.

    It probes after every trial error and every ``every_s`` seconds: a real write of
    ``probe_bytes`` (fsynced) into the study directory. Object stores are not probed.
    """

    def __init__(self, store: Store, *, every_s: float = 30.0, probe_bytes: int = 1 << 16):
        self.store, self.every_s, self.probe_bytes = store, every_s, probe_bytes
        self._last = time.monotonic()

    def check(self) -> None:
        """Raise :class:`StorageFull` if a real write into the study directory fails for lack of space."""
        if self.store.remote:
            return
        try:
            probe_write(Path(self.store.root), self.probe_bytes)
        except OSError as exc:
            if is_storage_full(exc):
                raise StorageFull(full_message(exc, self.store.root)) from None

    def full_after(self, exc: BaseException) -> str | None:
        """Why the run stopped if ``exc`` (raised by Tune) comes from a full storage; None otherwise."""
        if isinstance(exc, StorageFull):
            return str(exc)
        if isinstance(exc, OSError) and is_storage_full(exc):
            return full_message(exc, self.store.root)
        try:  # Tune failed on a file the full disk truncated (e.g. a trial's error.pkl)
            self.check()
        except StorageFull as full:
            return str(full)
        return None

    def on_trial_error(self, iteration, trials, trial, **info):
        self._last = time.monotonic()
        self.check()

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self.check()


def full_message(exc: OSError, root: str) -> str:
    free = free_bytes(root)
    left = f", {free / 2**20:.0f} MiB free" if free is not None else ""
    return f"the study storage is full ({exc.strerror or exc}{left})"


def watch(store: Store) -> tuple[DriverHeartbeat, StorageGuard]:
    """Start the heartbeat; make the storage guard (a Tune callback)."""
    return DriverHeartbeat(store).start(), StorageGuard(store)
