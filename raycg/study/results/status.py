"""``raycg study status``: counts (done / failed / running / pending) and an ETA from the storage alone.

No Ray is needed: every trial keeps ``trials/<id>/status.json`` (phase, progress, last update)
while it runs and ``result.json`` once it finished.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from raycg.errors import ConfigError
from raycg.study.storage import Store, is_remote, join, normalize

FINAL = ("ok", "failed")


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


def _trial_state(store: Store, tid: str, now: float, stale_s: float) -> tuple[dict[str, Any], float | None]:
    res = store.try_read_json(f"trials/{tid}/result.json")
    st = store.try_read_json(f"trials/{tid}/status.json") or {}
    if res and res.get("status") in FINAL:
        state = "done" if res["status"] == "ok" else "failed"
        runtime = float(res["runtime_s"]) if res.get("runtime_s") else None
        return {"trial_id": tid, "state": state, "progress": 1.0, "error": res.get("error")}, runtime
    if st and now - float(st.get("updated_unix", 0)) < stale_s:
        return {"trial_id": tid, "state": "running", "progress": float(st.get("progress", 0.0)),
                "phase": st.get("phase"), "error": None}, None
    return {"trial_id": tid, "state": "pending" if not st else "stalled",
            "progress": float(st.get("progress", 0.0)) if st else 0.0, "error": None}, None


def study_status(name_or_path: str, *, storage: str | None = None, stale_s: float = 300.0) -> dict[str, Any]:
    """Counts (done / failed / running / pending / stalled), an ETA, and one entry per trial."""
    uri = normalize(name_or_path)
    if not Store(uri).exists("study.json"):
        uri = resolve_study(name_or_path, storage)
    store = Store(uri)
    study = store.read_json("study.json")
    now = time.time()
    trials, runtimes = [], []
    for tid in study["trial_ids"]:
        entry, runtime = _trial_state(store, tid, now, stale_s)
        trials.append(entry)
        if runtime:
            runtimes.append(runtime)
    counts = {s: sum(1 for t in trials if t["state"] == s) for s in ("done", "failed", "running", "pending", "stalled")}
    conc = (study["spec"].get("concurrency") or {}).get("max_concurrent_trials") or max(1, counts["running"])
    remaining = sum(1.0 - t["progress"] for t in trials if t["state"] not in ("done", "failed"))
    eta = (remaining * (sum(runtimes) / len(runtimes)) / max(1, conc)) if runtimes else float("nan")
    if remaining == 0:
        eta = 0.0
    return {"name": study["name"], "uri": uri, "n_trials": study["n_trials"], **counts, "eta_s": eta,
            "trials": trials, "report": join(uri, "results", "report.md") if store.exists("results/report.md") else None}


def format_status(st: dict[str, Any]) -> str:
    lines = [f"study {st['name']} ({st['uri']})",
             f"trials: {st['done']}/{st['n_trials']} done, {st['running']} running, {st['failed']} failed, "
             f"{st['pending'] + st['stalled']} pending; ETA {fmt_seconds(st['eta_s'])}"]
    for t in st["trials"]:
        extra = f" ({t.get('phase')}, {100 * t['progress']:.0f}%)" if t["state"] == "running" else ""
        err = f": {t['error']}" if t.get("error") else ""
        lines.append(f"  {t['trial_id']:<28} {t['state']}{extra}{err}")
    if st.get("report"):
        lines.append(f"report: {st['report']}")
    return "\n".join(lines)


def fmt_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
