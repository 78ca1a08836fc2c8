"""The grid and per-trial configs as plain data (no stage imports: Ray workers import this cheaply)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any


# --- dotted access --------------------------------------------------------------------------------
def get_dotted(data: dict, key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def set_dotted(data: dict, key: str, value: Any, *, create: bool = False) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if part not in node:
            if not create:
                raise KeyError(key)
            node[part] = {}
        node = node[part]
    if parts[-1] not in node and not create:
        raise KeyError(key)
    node[parts[-1]] = value



# --- the grid -------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        s = f"{v:g}"
    else:
        s = str(v)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", s)


def trial_id_for(point: dict[str, Any]) -> str:
    """A readable, deterministic trial id from a grid point, e.g. ``w0.1_s2`` or ``w1_s0_lr=0.001``."""
    parts = [f"w{_fmt(point['energy_weight'])}", f"s{_fmt(point['seed'])}"]
    for key in sorted(k for k in point if k not in ("energy_weight", "seed")):
        parts.append(f"{key.split('.')[-1]}={_fmt(point[key])}")
    tid = "_".join(parts)
    if len(tid) > 80:
        tid = tid[:60] + "_" + hashlib.sha256(tid.encode()).hexdigest()[:12]
    return tid


# Where the energy weight and the seed go in the resolved per-trial config.
ENERGY_WEIGHT_KEYS = ("training.loss.energy_weight",)
SEED_KEYS = ("training.seed", "simulation.seed", "toy.seed")


def trial_config_from_dict(spec: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The full per-trial config (the spec's sections with the grid point's values applied)."""
    data = copy.deepcopy(spec)
    for key in ("grid", "storage", "retries", "concurrency", "description"):
        data.pop(key, None)
    for key in ENERGY_WEIGHT_KEYS:
        set_dotted(data, key, point["energy_weight"], create=True)
    for key in SEED_KEYS:
        section = key.split(".")[0]
        if isinstance(data.get(section), dict):
            set_dotted(data, key, point["seed"], create=True)
    for key, value in point.items():
        if key not in ("energy_weight", "seed"):
            set_dotted(data, key, value, create=key.startswith("toy."))
    data["energy_weight"] = point["energy_weight"]
    data["seed"] = point["seed"]
    return data


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
