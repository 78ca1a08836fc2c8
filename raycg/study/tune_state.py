"""Repairing a study before it resumes: a truncated Tune state, trials failed by a full disk.

Tune keeps its experiment in ``STUDY/tune`` (``tuner.pkl``, ``experiment_state-*.json``, the search
state, one directory of checkpoints per trial) and copies those files into the storage without
renaming them into place. A disk that fills up, or a driver killed mid-copy, leaves them truncated;
``Tuner.restore`` then logs "Failed to restore the run state", builds trials from an empty config
and crashes (``KeyError: 'energy_weight'``). The trials' own records are written atomically
(``result.json``, ``status.json``, ``attempts/``) and stay intact, so the study can be rebuilt from them:

- :func:`tune_state_problems` checks every file ``Tuner.restore`` reads, without executing any
  pickle (``pickletools`` walks the opcodes: a truncated pickle has no STOP);
- :func:`rebuild` moves the newest complete checkpoint of each unfinished trial (by its manifest,
  :mod:`raycg.study.trial.checkpoint`) to ``trials/<id>/recovered_checkpoint`` and removes
  ``STUDY/tune``; the driver then starts the grid afresh: finished trials report their stored
  result without running, unfinished ones continue from the recovered checkpoint;
- :func:`release_storage_failures` sets aside ``result.json`` files of trials that failed only
  because the storage was full (they run again), keeping them under ``trials/<id>/superseded/``;
- :func:`recreate_missing_checkpoints`: a killed driver's last saved state can lag behind the
  storage: the trials went on and Tune deleted checkpoints (it keeps the newest two) that the saved
  state still lists. After a resume Tune deletes them again, fails on the missing directory
  ("Trial ...: Error handling checkpoint", a traceback) and skips the rest of that clean-up, which
  leaks the other old checkpoints. Their directories are recreated empty before the restore, so
  Tune's clean-up finds and removes them; restoring never uses an incomplete checkpoint
  (:mod:`raycg.study.trial.session`).

Every repair is logged in ``STUDY/repairs.json``. Nothing here imports Ray.
"""

from __future__ import annotations

import json
import os
import pickletools
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raycg.study.storage import Store, is_storage_full
from raycg.study.trial import checkpoint as ckpt_files

TUNE_DIR = "tune"
REPAIRS = "repairs.json"
RECOVERED = "recovered_checkpoint"
FINAL = ("ok", "failed")


def pickle_problem(data: bytes) -> str | None:
    """Why ``data`` is not a complete pickle (None: it is); nothing is unpickled."""
    if not data:
        return "empty"
    try:
        ops = [op for op, _, _ in pickletools.genops(data)]
    except Exception as exc:  # noqa: BLE001 - any parse failure: cut short or overwritten
        return f"truncated or corrupt ({str(exc)[:60]})"
    return None if ops and ops[-1].name == "STOP" else "truncated or corrupt (no STOP opcode)"


def _newest(files: list[str], prefix: str, suffix: str) -> str | None:
    found = sorted(f for f in files if f.startswith(prefix) and f.endswith(suffix))
    return found[-1] if found else None


def tune_state_problems(store: Store, grid_keys: tuple[str, ...] = ("energy_weight", "seed")) -> list[str]:
    """What would keep ``Tuner.restore`` from resuming ``STUDY/tune`` (empty: it can, or there is no state)."""
    if not store.exists(TUNE_DIR):
        return []
    files = store.listdir(TUNE_DIR)
    problems = []
    for name in ["tuner.pkl", _newest(files, "basic-variant-state-", ".json"), _newest(files, "searcher-state-", ".pkl")]:
        if name is None:
            continue
        if name not in files:
            problems.append(f"{TUNE_DIR}/{name} is missing")
        elif why := pickle_problem(store.read_bytes(f"{TUNE_DIR}/{name}")):
            problems.append(f"{TUNE_DIR}/{name} is {why}")
    state = _newest(files, "experiment_state-", ".json")
    if state is None:
        problems.append(f"{TUNE_DIR} has no experiment_state-*.json")
    else:
        problems += _experiment_state_problems(store.read_bytes(f"{TUNE_DIR}/{state}"), f"{TUNE_DIR}/{state}",
                                               grid_keys)
    return problems


def _experiment_state_problems(raw: bytes, where: str, grid_keys: tuple[str, ...]) -> list[str]:
    try:
        state = json.loads(raw)
        trials = state["trial_data"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{where} is truncated or corrupt ({type(exc).__name__}: {str(exc)[:80]})"]
    problems = []
    for i, entry in enumerate(trials):
        try:
            trial = json.loads(entry[0]) if isinstance(entry, list) else entry
            config = trial.get("config") or {}
            config = json.loads(config) if isinstance(config, str) else config
        except (ValueError, AttributeError, TypeError, IndexError):
            problems.append(f"{where}: trial {i} is unreadable")
            continue
        missing = [k for k in grid_keys if k not in config]
        if missing and not _encoded(config):
            problems.append(f"{where}: trial {i} has no {', '.join(missing)} in its config")
    return problems


def _encoded(config: Any) -> bool:
    """Tune stores some configs as an encoded blob (``{"_type": "CLOUDPICKLE_FALLBACK", ...}``): not checkable here."""
    return isinstance(config, dict) and "_type" in config


def unfinished_trials(store: Store, trial_ids: list[str]) -> list[str]:
    out = []
    for tid in trial_ids:
        res = store.try_read_json(f"trials/{tid}/result.json")
        if not (res and res.get("status") in FINAL):
            out.append(tid)
    return out


def rebuild(store: Store, trial_ids: list[str], problems: list[str], *, log: Callable[[str], None]) -> dict[str, Any]:
    """Salvage each unfinished trial's newest complete checkpoint, remove ``STUDY/tune``; return the repair record."""
    salvaged: dict[str, str | None] = {}
    for tid in unfinished_trials(store, trial_ids):
        salvaged[tid] = _salvage(store, tid)
    store.delete(TUNE_DIR)
    record = {"time_unix": time.time(), "action": "rebuilt the Tune state from the trials' records",
              "problems": problems, "recovered_checkpoints": salvaged}
    _log_repair(store, record)
    kept = sum(1 for v in salvaged.values() if v)
    log(f"repair: Tune state unusable ({problems[0]}{'; ...' if len(problems) > 1 else ''}); rebuilt from the trials' "
        f"records: {len(trial_ids) - len(salvaged)} finished kept, {kept} of {len(salvaged)} unfinished continue "
        "from their last complete checkpoint")
    return record


def _salvage(store: Store, tid: str) -> str | None:
    """Move (local) or copy (object store) the newest complete checkpoint of ``tid`` to ``recovered_checkpoint``."""
    rel = f"{TUNE_DIR}/{tid}"
    dest = f"trials/{tid}/{RECOVERED}"
    if not store.exists(rel):
        return None
    if not store.remote:
        best = ckpt_files.newest_complete(store.local_path(rel))
        if best is None:
            return None
        target = store.local_path(dest)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(best, target)  # same filesystem: no extra space needed on a full disk
        return best.name
    with tempfile.TemporaryDirectory(prefix="raycg-salvage-") as tmp:
        local = store.download_dir(rel, Path(tmp) / "trial")
        best = ckpt_files.newest_complete(local)
        if best is None:
            return None
        store.upload_dir(best, dest)
        return best.name


def release_storage_failures(store: Store, trial_ids: list[str], *, log: Callable[[str], None]) -> list[str]:
    """Set aside ``result.json`` of trials that failed because the storage was full, so they run again."""
    released = []
    for tid in trial_ids:
        rel = f"trials/{tid}/result.json"
        res = store.try_read_json(rel)
        if not res or res.get("status") != "failed" or not is_storage_full(res.get("error") or ""):
            continue
        store.write_bytes(f"trials/{tid}/superseded/result-{int(time.time() * 1000)}.json", store.read_bytes(rel))
        store.delete(rel)
        released.append(tid)
    if released:
        _log_repair(store, {"time_unix": time.time(), "action": "released trials failed by a full storage",
                            "trials": released})
        log(f"repair: {len(released)} trial(s) failed only because the storage was full; they run again: "
            f"{', '.join(released)}")
    return released


def _log_repair(store: Store, record: dict[str, Any]) -> None:
    old = store.try_read_json(REPAIRS)
    history = old if isinstance(old, list) else []
    store.write_json(REPAIRS, [*history, record])


_HEX = re.compile(rb"[0-9a-f]{64,}")


def referenced_checkpoints(state_raw: bytes, tune_root: str) -> set[tuple[str, str]]:
    """(trial dir, checkpoint dir) pairs an experiment state lists under ``tune_root``.

    Tune keeps each trial's checkpoint list as a cloudpickle blob, hex-encoded in the JSON; the
    paths are found by searching the decoded bytes (nothing is unpickled).
    """
    pattern = re.compile(re.escape(tune_root.rstrip("/").encode()) + rb"/([^/\x00-\x1f\"]+)/(checkpoint_\d+)")
    found = set()
    for run in _HEX.findall(state_raw):
        try:
            blob = bytes.fromhex(run[: len(run) // 2 * 2].decode())
        except ValueError:
            continue
        found.update((t.decode(errors="replace"), c.decode()) for t, c in pattern.findall(blob))
    return found


def recreate_missing_checkpoints(store: Store, *, log: Callable[[str], None]) -> list[str]:
    """Recreate (empty) the checkpoint directories the saved Tune state lists but the storage lost."""
    if store.remote or not store.exists(TUNE_DIR):
        return []
    state = _newest(store.listdir(TUNE_DIR), "experiment_state-", ".json")
    if state is None:
        return []
    made = []
    tune_root = str(store.local_path(TUNE_DIR))
    for trial, name in sorted(referenced_checkpoints(store.read_bytes(f"{TUNE_DIR}/{state}"), tune_root)):
        path = store.local_path(f"{TUNE_DIR}/{trial}/{name}")
        if path.parent.is_dir() and not path.exists():
            path.mkdir()
            made.append(f"{trial}/{name}")
    if made:
        log(f"repair: the saved Tune state lags behind the storage (the previous driver stopped between saves); "
            f"{len(made)} checkpoint(s) it lists were already deleted: {', '.join(made[:4])}"
            f"{' ...' if len(made) > 4 else ''}")
    return made


def repair_study(store: Store, trial_ids: list[str], grid_keys: tuple[str, ...], *,
                 log: Callable[[str], None]) -> bool:
    """Everything a resume needs fixed first; True if the Tune state was rebuilt (start a fresh grid)."""
    release_storage_failures(store, trial_ids, log=log)
    problems = tune_state_problems(store, grid_keys)
    if not problems:
        recreate_missing_checkpoints(store, log=log)
        return False
    rebuild(store, trial_ids, problems, log=log)
    return True
