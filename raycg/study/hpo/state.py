"""Ray Tune's saved search state is pickled: raycg lets Tune load only the state raycg recorded.

A search keeps Tune's state in ``STUDY/tune``. On a resume, ``Tuner.restore`` and ``fit()`` unpickle
``tuner.pkl``, the cloudpickle blobs inside the newest ``experiment_state-*.json``, the newest
``searcher-state-*.pkl``, ``search_gen_state-*.json`` and ``callback-states-*.pkl`` (Tune copies
every top-level ``.json``/``.pkl`` before it picks), and its results read each trial's
``error.pkl``; unpickling runs whatever code the bytes name. So a study folder from someone else
must not reach Tune:

- :class:`StateRecorder` (driven by a Tune callback of the search, and by the search itself after
  the Tuner is made and after ``fit()``) records the sha256 of every state file
  (:func:`state_files`: each top-level file of ``STUDY/tune``, each ``*.pkl`` of its trial
  directories; a directory named like a state file is refused) whenever one changed (sizes and mtimes: one stat each) in
  ``STUDY/hpo_state_digest.json``, written atomically and signed (HMAC-SHA256) with a key that
  stays on this machine (:func:`key_path`);
- :func:`verify_state` runs before anything restores: every state file there must be a regular file
  listed in a record signed with this machine's key, with the same digest. Otherwise one
  :class:`~raycg.errors.ConfigError` line says which file and why, and nothing is unpickled.

Nothing here imports Ray.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any

from raycg.errors import ConfigError
from raycg.study.storage import Store
from raycg.utils.io import not_regular_file

TUNE_DIR = "tune"
RECORD = "hpo_state_digest.json"
FORMAT = "raycg-tune-state-digest"
VERSION = 1
#: the key file (a path) instead of ``$XDG_CONFIG_HOME/raycg/state.key`` (default ``~/.config``)
KEY_ENV = "RAYCG_STATE_KEY_FILE"
#: an object store is listed at most this often while a search runs (a local disk: every step)
REMOTE_EVERY_S = 5.0


def key_path() -> Path:
    """Where this machine's signing key lives (``$RAYCG_STATE_KEY_FILE``, else the config dir)."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base, "raycg", "state.key")


def _key(create: bool) -> bytes | None:
    """The signing key (32 random bytes, hex in a 0600 file); made on first use if ``create``."""
    path = key_path()
    problem = not_regular_file(path)
    if problem == "not found" and create:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by a search started at the same moment
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        problem = not_regular_file(path)
    if problem == "not found":
        return None
    if problem is not None:
        raise ConfigError(f"raycg's state key {path} {problem}",
                          hint=f"remove it, or set {KEY_ENV}")
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"raycg's state key {path} is unreadable ({type(exc).__name__})",
                          hint=f"remove it (raycg makes a new one), or set {KEY_ENV}") from None
    if len(key) < 16:
        raise ConfigError(f"raycg's state key {path} is too short",
                          hint="remove it (raycg makes a new one)")
    return key


def _sign(key: bytes, files: dict[str, dict[str, Any]]) -> str:
    body = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, FORMAT.encode() + b"\0" + body, hashlib.sha256).hexdigest()


# ----------------------------------------------------------------------------------------------
# the files Tune unpickles (and every other file it copies before it picks)


def _entries(store: Store, rel: str) -> list[tuple[str, str, int, int]]:
    """(name, kind "file" | "dir" | what else it is, size, mtime ns) of the entries of ``rel``."""
    if not store.remote:
        out = []
        try:
            with os.scandir(store.local_path(rel)) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    out.append((e.name, _kind(st.st_mode), st.st_size, st.st_mtime_ns))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(out)
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(store.uri(rel))
    kinds = {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted((Path(i.path).name, kinds.get(i.type, "a special file"), int(i.size or 0),
                   int(i.mtime_ns or 0)) for i in infos)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a special file"


def state_files(store: Store) -> dict[str, tuple[str, int, int]]:
    """``tune/...`` path -> (kind, size, mtime ns) of every file whose bytes Tune may unpickle."""
    out: dict[str, tuple[str, int, int]] = {}
    for name, kind, size, mtime in _entries(store, TUNE_DIR):
        if kind != "dir" or name.endswith((".pkl", ".json")):  # a directory Tune would try to read
            out[f"{TUNE_DIR}/{name}"] = ("a directory" if kind == "dir" else kind, size, mtime)
            continue
        for sub, skind, ssize, smtime in _entries(store, f"{TUNE_DIR}/{name}"):
            if sub.endswith(".pkl"):
                skind = "a directory" if skind == "dir" else skind
                out[f"{TUNE_DIR}/{name}/{sub}"] = (skind, ssize, smtime)
    return out


def has_state(store: Store) -> bool:
    """Whether ``STUDY/tune`` holds a search Tune would restore (its ``tuner.pkl``), or any state
    file at all (a new search there would record them as its own, and a resume would load them)."""
    return store.exists(f"{TUNE_DIR}/tuner.pkl") or bool(state_files(store))


def _sha256(store: Store, rel: str) -> str:
    return hashlib.sha256(store.read_bytes(rel)).hexdigest()


# ----------------------------------------------------------------------------------------------
# verifying


def _refuse(store: Store, what: str) -> ConfigError:
    return ConfigError(
        f"{store.uri(TUNE_DIR)}: {what}, so raycg will not let Ray Tune unpickle it (a pickle runs "
        "code: a search state raycg did not record may come from anyone)",
        hint=f"if this search is yours, delete {store.uri(TUNE_DIR)} to start it again, or point "
             f"{KEY_ENV} at the key of the machine that ran it")


def read_record(store: Store) -> dict[str, dict[str, Any]]:
    """The files of this folder's signed record; ConfigError (one line) when it is missing, not
    raycg's or not signed with this machine's key."""
    problem = None if store.remote else not_regular_file(store.local_path(RECORD))
    if problem not in (None, "not found"):
        raise _refuse(store, f"{RECORD} {problem}")
    try:
        raw = store.read_bytes(RECORD)
    except OSError:
        raise _refuse(store, f"no {RECORD} (raycg's record of the state it wrote)") from None
    try:
        rec = json.loads(raw)
        files, mac = rec["files"], rec["hmac"]
        ok = rec.get("format") == FORMAT and rec.get("version") == VERSION
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise _refuse(store, f"{RECORD} is not a record raycg wrote") from None
    ok = ok and isinstance(files, dict) and isinstance(mac, str)
    if not (ok and all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                       for v in files.values())):
        raise _refuse(store, f"{RECORD} is not a record raycg wrote (format {FORMAT} {VERSION})")
    key = _key(create=False)
    if key is None or not hmac.compare_digest(_sign(key, files), mac):
        raise _refuse(store, f"{RECORD} was not signed with this machine's raycg key "
                             f"({key_path()})")
    return files


def verify_state(store: Store) -> dict[str, dict[str, Any]]:
    """Before Tune restores ``STUDY/tune``: every state file is a regular file whose sha256 is the
    one raycg recorded (in a record signed with this machine's key); ConfigError (one line) if not.
    Returns the record's files. Files it lists that are gone are no error (Tune reads none).
    """
    files = read_record(store)
    for rel, (kind, _, _) in state_files(store).items():
        name = rel.removeprefix(TUNE_DIR + "/")
        if kind != "file":
            raise _refuse(store, f"{name} is {kind}, not a regular file")
        want = files.get(rel, {}).get("sha256")
        if want is None:
            raise _refuse(store, f"{name} is not in raycg's record")
        if not hmac.compare_digest(_sha256(store, rel), want):
            raise _refuse(store, f"{name} does not match the sha256 raycg recorded for it")
    return files


# ----------------------------------------------------------------------------------------------
# recording


class StateRecorder:
    """Keeps ``STUDY/hpo_state_digest.json`` up to date with Tune's state files.

    :meth:`record` re-hashes only the files whose size or mtime changed and rewrites the record
    (atomically, signed) when anything did. The search's Tune callback calls it after each Tune
    step, on each finished or failed trial and at the end; the search itself after making the Tuner
    and after ``fit()``. ``trusted``: the files of a record :func:`verify_state` accepted.
    """

    def __init__(self, uri: str, *, trusted: dict[str, dict[str, Any]] | None = None):
        self.uri = uri
        self._files: dict[str, dict[str, Any]] = dict(trusted or {})
        self._seen: dict[str, tuple[int, int]] = {}
        self._last = 0.0

    def record(self, *, force: bool = False) -> None:
        """Hash what changed since the last call; rewrite the record if anything did (or force)."""
        store = Store(self.uri)
        if store.remote and not force and time.monotonic() - self._last < REMOTE_EVERY_S:
            return
        self._last = time.monotonic()
        now = state_files(store)
        changed = False
        for rel, (kind, size, mtime) in now.items():
            if kind != "file" or self._seen.get(rel) == (size, mtime):
                continue
            try:
                digest = _sha256(store, rel)
            except OSError:  # replaced or removed meanwhile: the next call sees it
                continue
            self._seen[rel] = (size, mtime)
            if self._files.get(rel, {}).get("sha256") != digest:
                self._files[rel] = {"sha256": digest, "bytes": size}
                changed = True
        for rel in set(self._files) - set(now):
            del self._files[rel]
            self._seen.pop(rel, None)
            changed = True
        if changed or force or not store.exists(RECORD):
            key = _key(create=True)
            assert key is not None
            store.write_json(RECORD, {"format": FORMAT, "version": VERSION, "files": self._files,
                                      "hmac": _sign(key, self._files)})
