"""raycg.study.hpo.state: Tune's search state is let through only as raycg recorded it.

A fake ``STUDY/tune`` (the files Tune leaves: tuner.pkl, experiment and searcher state, a trial
directory) is recorded with :class:`StateRecorder`; each way of changing it afterwards (bytes, an
extra file, another machine's key, a link or FIFO, no record) must be refused by ``verify_state``
with one ConfigError line, and the untouched state accepted. No Ray, no unpickling.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from raycg.errors import ConfigError
from raycg.study.hpo import state as hs
from raycg.study.storage import Store

TUNE_FILES = {
    "tuner.pkl": b"\x80\x05tuner",
    "experiment_state-2026-01-01_00-00-00.json": b'{"trial_data": []}',
    "searcher-state-2026-01-01_00-00-00.pkl": b"\x80\x05searcher",
    "search_gen_state-2026-01-01_00-00-00.json": b"{}",
    ".validate_storage_marker": b"",
    "w0_s0_lr=0.1_abcd/params.pkl": b"\x80\x05params",
    "w0_s0_lr=0.1_abcd/result.json": b"{}",
}


@pytest.fixture(autouse=True)
def key_file(tmp_path, monkeypatch):
    """Every test signs with a key under its own tmp dir (nothing is written to ~/.config)."""
    path = tmp_path / "keys" / "state.key"
    monkeypatch.setenv(hs.KEY_ENV, str(path))
    return path


@pytest.fixture
def study(tmp_path):
    """A study folder whose tune/ raycg recorded."""
    root = tmp_path / "study"
    for rel, data in TUNE_FILES.items():
        p = root / "tune" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    hs.StateRecorder(str(root)).record(force=True)
    return root


def refusal(root) -> str:
    with pytest.raises(ConfigError) as info:
        hs.verify_state(Store(str(root)))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(root / "tune") + ": "), msg
    assert "will not let Ray Tune unpickle it" in msg and hs.KEY_ENV in msg, msg
    return msg


def test_the_untouched_recorded_state_is_accepted(study, key_file):
    files = hs.verify_state(Store(str(study)))
    assert set(files) == {"tune/" + r for r in TUNE_FILES if r != "w0_s0_lr=0.1_abcd/result.json"}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(bytes.fromhex(key_file.read_text())) == 32
    rec = json.loads((study / hs.RECORD).read_text())
    assert rec["format"] == hs.FORMAT and rec["version"] == hs.VERSION and len(rec["hmac"]) == 64


def test_a_state_tune_changed_and_raycg_recorded_again_is_accepted(study):
    rec = hs.StateRecorder(str(study), trusted=hs.verify_state(Store(str(study))))
    (study / "tune" / "experiment_state-2026-01-01_00-00-00.json").write_bytes(b'{"trial_data": [1]}')
    (study / "tune" / "w0_s0_lr=0.1_abcd" / "params.pkl").unlink()
    (study / "tune" / "w1_s0_lr=0.2_ef01").mkdir()
    (study / "tune" / "w1_s0_lr=0.2_ef01" / "params.pkl").write_bytes(b"\x80\x05other")
    rec.record()
    files = hs.verify_state(Store(str(study)))
    assert "tune/w1_s0_lr=0.2_ef01/params.pkl" in files and "tune/w0_s0_lr=0.1_abcd/params.pkl" not in files


def test_a_recorded_file_that_is_gone_is_no_error(study):
    (study / "tune" / "searcher-state-2026-01-01_00-00-00.pkl").unlink()
    hs.verify_state(Store(str(study)))


@pytest.mark.parametrize("rel", ["tuner.pkl", "searcher-state-2026-01-01_00-00-00.pkl",
                                 "experiment_state-2026-01-01_00-00-00.json", "w0_s0_lr=0.1_abcd/params.pkl"])
def test_a_tampered_file_is_refused(study, rel):
    path = study / "tune" / rel
    st = path.stat()
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: the bytes are compared
    assert f"{rel} does not match the sha256 raycg recorded for it" in refusal(study)


@pytest.mark.parametrize("rel", ["searcher-state-2099-01-01_00-00-00.pkl", "callback-states-2099.pkl",
                                 "w0_s0_lr=0.1_abcd/error.pkl", "w9_s9_new/params.pkl"])
def test_a_file_not_in_the_record_is_refused(study, rel):
    path = study / "tune" / rel
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\x80\x05new")
    assert f"{rel} is not in raycg's record" in refusal(study)


def test_a_file_raycg_does_not_check_may_be_added(study):
    (study / "tune" / "w0_s0_lr=0.1_abcd" / "progress.csv").write_text("a,b\n")  # Tune never unpickles it
    hs.verify_state(Store(str(study)))


def test_a_record_signed_with_another_key_is_refused(study, tmp_path, monkeypatch):
    monkeypatch.setenv(hs.KEY_ENV, str(tmp_path / "other" / "state.key"))
    assert "not signed with this machine's raycg key" in refusal(study)  # no key here yet
    hs._key(create=True)
    assert "not signed with this machine's raycg key" in refusal(study)  # a key, not the signer's


def test_a_record_rewritten_to_match_a_replaced_file_is_refused(study):
    (study / "tune" / "tuner.pkl").write_bytes(b"\x80\x05evil")
    rec = json.loads((study / hs.RECORD).read_text())
    rec["files"]["tune/tuner.pkl"]["sha256"] = hs.hashlib.sha256(b"\x80\x05evil").hexdigest()
    (study / hs.RECORD).write_text(json.dumps(rec))
    assert "not signed with this machine's raycg key" in refusal(study)


def test_a_symlink_in_tune_is_refused(study, tmp_path):
    outside = tmp_path / "same_bytes.pkl"
    outside.write_bytes(TUNE_FILES["tuner.pkl"])
    (study / "tune" / "tuner.pkl").unlink()
    (study / "tune" / "tuner.pkl").symlink_to(outside)  # identical bytes, but a link
    assert "tuner.pkl is a symbolic link, not a regular file" in refusal(study)


def test_a_symlinked_pkl_in_a_trial_directory_is_refused(study, tmp_path):
    target = study / "tune" / "w0_s0_lr=0.1_abcd" / "params.pkl"
    (study / "tune" / "w0_s0_lr=0.1_abcd" / "error.pkl").symlink_to(target)
    assert "w0_s0_lr=0.1_abcd/error.pkl is a symbolic link" in refusal(study)


def test_a_fifo_in_tune_is_refused_without_opening_it(study):
    os.mkfifo(study / "tune" / "experiment_state-2099.json")  # opening it would block for ever
    assert "experiment_state-2099.json is a FIFO (named pipe), not a regular file" in refusal(study)


def test_a_directory_where_tune_reads_a_file_is_refused(study):
    (study / "tune" / "tuner.pkl").unlink()
    (study / "tune" / "tuner.pkl").mkdir()
    assert "tuner.pkl is a directory, not a regular file" in refusal(study)


def test_a_missing_record_is_refused(study):
    (study / hs.RECORD).unlink()
    assert f"no {hs.RECORD} (raycg's record of the state it wrote)" in refusal(study)


@pytest.mark.parametrize("body", ["not json", "[]", '{"format": "raycg-tune-state-digest", "version": 1}',
                                  '{"format": "other", "version": 1, "files": {}, "hmac": ""}',
                                  '{"format": "raycg-tune-state-digest", "version": 1, "files": {"a": 1}, '
                                  '"hmac": ""}'])
def test_a_record_raycg_did_not_write_is_refused(study, body):
    (study / hs.RECORD).write_text(body)
    assert f"{hs.RECORD} is not a record raycg wrote" in refusal(study)


def test_a_record_that_is_a_fifo_is_refused(study):
    (study / hs.RECORD).unlink()
    os.mkfifo(study / hs.RECORD)
    assert f"{hs.RECORD} is a FIFO (named pipe), not a regular file" in refusal(study)


def test_a_key_file_that_is_not_a_file_is_one_line(study, tmp_path, monkeypatch):
    bad = tmp_path / "keydir"
    bad.mkdir()
    monkeypatch.setenv(hs.KEY_ENV, str(bad))
    with pytest.raises(ConfigError, match=r"state key .*keydir is a directory, not a regular file; remove it"):
        hs.verify_state(Store(str(study)))


def test_the_key_lives_where_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.setenv(hs.KEY_ENV, str(tmp_path / "k"))
    assert hs.key_path() == tmp_path / "k"
    monkeypatch.delenv(hs.KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert hs.key_path() == tmp_path / "cfg" / "raycg" / "state.key"


def test_has_state_sees_tuner_pkl_and_leftover_state(tmp_path):
    root = tmp_path / "s"
    (root / "tune").mkdir(parents=True)
    assert not hs.has_state(Store(str(root)))
    (root / "tune" / "searcher-state-2099.pkl").write_bytes(b"x")  # no tuner.pkl: a new search would record it
    assert hs.has_state(Store(str(root)))


def test_leftover_state_without_a_record_is_refused(tmp_path):
    root = tmp_path / "s"
    (root / "tune").mkdir(parents=True)
    (root / "tune" / "searcher-state-2099.pkl").write_bytes(b"x")
    assert f"no {hs.RECORD}" in refusal(root)
