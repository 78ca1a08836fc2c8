"""``raycg study status``: counts (done / failed / running / pending) and an ETA from the storage alone.

No Ray is needed: every trial keeps ``trials/<id>/status.json`` (phase, progress, last update)
while it runs and ``result.json`` once it finished; the driver keeps ``driver.json`` (host, PID,
a heartbeat every 5 s). A trial counts as running only while its driver is alive: on the
driver's host the PID is checked directly; elsewhere the heartbeat must be fresher than
:data:`DRIVER_STALE_S`. Unfinished trials of a study whose driver is gone are "interrupted"
(``raycg study resume`` continues them), not "running".
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path
from typing import Any

from raycg.errors import ConfigError
from raycg.study.pipelines.base import PHASE_END
from raycg.study.results.eta import PhaseTimer
from raycg.study.storage import Store, is_remote, join, normalize

FINAL = ("ok", "failed")
DRIVER_FILE = "driver.json"
#: a driver on another host whose heartbeat (every 5 s) is older than this counts as gone
DRIVER_STALE_S = 30.0


def resolve_study(name_or_path: str, storage: str | None = None) -> str:
    """A study's URI from a path/URI or a name (looked up under ``storage`` or ``./runs``, ``./results``)."""
    cands = []
    if is_remote(name_or_path) or os.sep in name_or_path or Path(name_or_path).exists():
        cands.append(normalize(name_or_path))
    bases = [storage] if storage else [os.environ.get("RAYCG_STORAGE") or "", "./runs", "./results"]
    cands += [join(normalize(base), name_or_path) for base in bases if base]
    for c in cands:
        if Store(c).exists("study.json"):
            return c
    raise ConfigError(f"study {name_or_path!r} not found (looked in: {', '.join(cands)})",
                      hint="give the study directory, or --storage where it lives")


def _pid_alive(pid: int, create_time: float | None) -> bool:
    import psutil

    try:
        p = psutil.Process(int(pid))
        return p.status() != psutil.STATUS_ZOMBIE and (create_time is None
                                                        or abs(p.create_time() - float(create_time)) < 0.05)
    except (psutil.Error, ValueError, TypeError):
        return False


def driver_state(store: Store, now: float | None = None) -> dict[str, Any] | None:
    """The study driver's record plus ``alive`` (True / False) and ``heartbeat_age_s``; None when none was kept."""
    rec = store.try_read_json(DRIVER_FILE)
    if not isinstance(rec, dict) or "pid" not in rec:
        return None
    now = time.time() if now is None else now
    age = now - float(rec.get("heartbeat_unix", 0.0))
    if rec.get("state") != "running":
        alive = False
    elif rec.get("host") == socket.gethostname():
        alive = _pid_alive(rec["pid"], rec.get("create_time"))
    else:
        alive = age < max(DRIVER_STALE_S, 3 * float(rec.get("heartbeat_s", 5.0)))
    return {**rec, "alive": alive, "heartbeat_age_s": age}


def _trial_state(store: Store, tid: str, now: float, stale_s: float,
                 driver_alive: bool | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The trial's entry of the status, and its result record once it finished."""
    res = store.try_read_json(f"trials/{tid}/result.json")
    st = store.try_read_json(f"trials/{tid}/status.json") or {}
    if res and res.get("status") in FINAL:
        state = "done" if res["status"] == "ok" else "failed"
        return {"trial_id": tid, "state": state, "progress": 1.0, "error": res.get("error")}, res
    if driver_alive is False:  # nothing runs without its driver, however fresh the trial's last report
        return {"trial_id": tid, "state": "interrupted", "progress": float(st.get("progress", 0.0)) if st else 0.0,
                "phase": st.get("phase") if st else None, "error": None}, None
    if st and now - float(st.get("updated_unix", 0)) < stale_s:
        return {"trial_id": tid, "state": "running", "progress": float(st.get("progress", 0.0)),
                "phase": st.get("phase"), "error": None}, None
    return {"trial_id": tid, "state": "pending" if not st else "stalled",
            "progress": float(st.get("progress", 0.0)) if st else 0.0, "error": None}, None


def _phase_timer(store: Store, trials: list[dict[str, Any]], results: list[dict[str, Any]]) -> PhaseTimer:
    """Phase durations of the finished trials (``stage_times``) and where each running trial is (its
    attempt record holds the seconds spent in its current phase as of its last report)."""
    timer = PhaseTimer(dict(PHASE_END))
    for res in results:
        for phase, seconds in (res.get("stage_times") or {}).items():
            if phase in PHASE_END:
                timer.add_finished(phase, float(seconds))  # (when is unknown: older than any running trial)
    for t in trials:
        if t["state"] != "running" or t.get("phase") not in PHASE_END:
            continue
        names = sorted(store.listdir(f"trials/{t['trial_id']}/attempts"))
        rec = store.try_read_json(f"trials/{t['trial_id']}/attempts/{names[-1]}") if names else None
        if not rec or not rec.get("updated_unix"):
            continue
        at = float(rec["updated_unix"])
        in_phase = float((rec.get("stage_times") or {}).get(t["phase"], 0.0))
        timer.place(t["trial_id"], t["phase"], t["progress"], at - in_phase, at)
    return timer


def study_status(name_or_path: str, *, storage: str | None = None, stale_s: float = 300.0) -> dict[str, Any]:
    """Counts (done / failed / running / pending / stalled), an ETA, and one entry per trial."""
    uri = normalize(name_or_path)
    if not Store(uri).exists("study.json"):
        uri = resolve_study(name_or_path, storage)
    store = Store(uri)
    study = store.read_json("study.json")
    now = time.time()
    driver = driver_state(store, now)
    trials, results = [], []
    for tid in study["trial_ids"]:
        entry, res = _trial_state(store, tid, now, stale_s, driver["alive"] if driver else None)
        trials.append(entry)
        if res and res.get("status") == "ok":
            results.append(res)
    counts = {s: sum(1 for t in trials if t["state"] == s)
              for s in ("done", "failed", "running", "pending", "stalled", "interrupted")}
    conc = (study["spec"].get("concurrency") or {}).get("max_concurrent_trials") or max(1, counts["running"])
    waiting = sum(1 for t in trials if t["state"] in ("pending", "stalled", "interrupted"))
    eta = _phase_timer(store, trials, results).eta(waiting, max(1, conc), now)
    return {"name": study["name"], "uri": uri, "n_trials": study["n_trials"], **counts, "eta_s": eta,
            "trials": trials, "driver": driver,
            "report": join(uri, "results", "report.md") if store.exists("results/report.md") else None}


def format_status(st: dict[str, Any]) -> str:
    interrupted = st.get("interrupted", 0)
    waiting = st["pending"] + st["stalled"] + interrupted
    lines = [f"study {st['name']} ({st['uri']})",
             f"trials: {st['done']}/{st['n_trials']} done, {st['running']} running, {st['failed']} failed, "
             f"{waiting} pending; ETA {fmt_seconds(st['eta_s']) if not interrupted else '? (not running)'}"]
    if st.get("driver"):
        lines.append(format_driver(st["driver"], st["uri"], unfinished=st["n_trials"] - st["done"] - st["failed"]))
    for t in st["trials"]:
        extra = f" ({t.get('phase')}, {100 * t['progress']:.0f}%)" if t["state"] in ("running", "interrupted") else ""
        err = f": {t['error']}" if t.get("error") else ""
        lines.append(f"  {t['trial_id']:<28} {t['state']}{extra}{err}")
    if st.get("report"):
        lines.append(f"report: {st['report']}")
    return "\n".join(lines)


def format_driver(d: dict[str, Any], uri: str, *, unfinished: int) -> str:
    where = f"pid {d['pid']} on {d.get('host')}"
    beat = f"last heartbeat {fmt_seconds(d['heartbeat_age_s'])} ago"
    if d["alive"]:
        return f"driver: running ({where}, {beat})"
    if d.get("state") == "running":  # it never wrote its final state: killed, or its machine was lost
        return (f"driver: gone ({where} ended without stopping the study; {beat}); "
                f"continue with `raycg study resume {uri}`")
    hint = f"; continue with `raycg study resume {uri}`" if unfinished else ""
    return f"driver: {d.get('state')} ({where}){hint}"


def fmt_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
