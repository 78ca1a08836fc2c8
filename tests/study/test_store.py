"""Study storage on a local path: atomic JSON, directories replaced whole, listings, the prepared dir."""

from __future__ import annotations

import json

import pytest

from raycg.errors import ConfigError
from raycg.study import prepared
from raycg.study.storage import Store, check_writable, is_remote, join, normalize


def test_json_text_and_bytes_round_trip(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.write_json("a/b.json", {"x": 1.5, "y": [1, 2]})
    assert store.read_json("a/b.json") == {"x": 1.5, "y": [1, 2]}
    assert json.loads((tmp_path / "s" / "a" / "b.json").read_text())["x"] == 1.5
    assert store.try_read_json("missing.json") is None
    (tmp_path / "s" / "bad.json").write_text("{half")
    assert store.try_read_json("bad.json") is None
    with pytest.raises(FileNotFoundError):
        store.read_json("missing.json")
    assert store.read_json("missing.json", default={"d": 1}) == {"d": 1}
    store.write_text("t.txt", "hé")
    assert store.read_bytes("t.txt") == "hé".encode()
    assert store.exists("a/b.json") and not store.exists("a/c.json")
    assert store.listdir("a") == ["b.json"] and store.listdir("nothing") == []
    assert not list((tmp_path / "s" / "a").glob(".*"))  # no temporary files left behind


def test_upload_replaces_a_directory_and_download_copies_it(tmp_path):
    store = Store(str(tmp_path / "s"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "one.txt").write_text("1")
    store.upload_dir(src, "trials/t/model")
    (src / "one.txt").unlink()
    (src / "two.txt").write_text("2")
    store.upload_dir(src, "trials/t/model")
    assert store.listdir("trials/t/model") == ["two.txt"]
    out = store.download_dir("trials/t/model", tmp_path / "dl")
    assert (out / "two.txt").read_text() == "2"
    store.delete("trials/t/model")
    store.delete("trials/t/absent")
    assert not store.exists("trials/t/model")


def test_paths_and_uris():
    assert is_remote("s3://b/p") and not is_remote("/x")
    assert join("s3://b/p/", "study", "/a") == "s3://b/p/study/a"
    assert normalize("s3://b/p/") == "s3://b/p"
    assert normalize("file:///tmp/x") == "/tmp/x"


def test_check_writable_refuses_a_path_below_a_file(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        check_writable(str(blocker / "runs"))
    check_writable(str(tmp_path / "new" / "dir"))
    assert (tmp_path / "new" / "dir").is_dir()


def test_prepared_dir_is_cached_by_its_inputs_hash(tmp_path):
    store = Store(str(tmp_path / "s"))
    local = tmp_path / "build"
    local.mkdir()
    (local / "priors.json").write_text("{}")
    prepared.publish(store, local, {"hash": "k1", "files": ["priors.json"]})
    assert prepared.cached(store, "k1")["files"] == ["priors.json"] and prepared.cached(store, "k2") is None
    d = prepared.local_dir(store)
    assert d == tmp_path / "s" / "prepared" and (d / "priors.json").is_file()
    assert prepared.read_info(d)["hash"] == "k1"
