"""Names and keys: a trial's readable id from its grid point, and a short hash of any JSON-able config."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any


def config_hash(obj: Any) -> str:
    """16 hex digits of the SHA-256 of ``obj`` as sorted JSON (a cache key / identity check)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fmt(v: Any) -> str:
    s = f"{v:g}" if isinstance(v, float) else str(v)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", s)


def trial_id_for(point: dict[str, Any]) -> str:
    """A readable, deterministic trial id from a grid point, e.g. ``w0.1_s2``, ``w1_s0_lr=0.001`` or,
    with an arm, ``corrected_w1_s0``."""
    parts = [f"w{_fmt(point['energy_weight'])}", f"s{_fmt(point['seed'])}"]
    if "arm" in point:
        parts.insert(0, _fmt(point["arm"]))
    for key in sorted(k for k in point if k not in ("energy_weight", "seed", "arm")):
        parts.append(f"{key.split('.')[-1]}={_fmt(point[key])}")
    tid = "_".join(parts)
    if len(tid) > 80:
        tid = tid[:60] + "_" + hashlib.sha256(tid.encode()).hexdigest()[:12]
    return tid
