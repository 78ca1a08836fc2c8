"""``raycg study tune`` lets Ray Tune restore only the search state raycg recorded.

One tiny toy search (three trials, one at a time) is interrupted (SIGINT, as Ctrl-C) after its
first trial, in a process of its own that also reports Ray's loopback-only switch after the search
shut its Ray down. Copies of the interrupted folder get a pickle whose unpickling creates a marker
file in place of tuner.pkl, the searcher state, a trial's params.pkl, or as leftover state without
tuner.pkl; ``raycg study tune`` on each must exit 2 with one line before Ray starts, and the marker
must not exist. The untouched folder resumes to the end and its summary can be rewritten.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raycg._testing.fault_injection import driver_env
from raycg.study.hpo.state import KEY_ENV, RECORD

from .conftest import end_own_processes, short_tmpdir
from .test_resume_untrusted import Poison

pytestmark = pytest.mark.ray

N = 3
SPEC = {"name": "hs", "pipeline": "toy", "grid": {"energy_weights": [0.0], "seeds": 1},
        "toy": {"epochs": 2, "epoch_s": 0.0, "chunks": 1, "chunk_s": 0.0}, "resources": {"cpus": 1},
        "search": {"num_samples": N, "max_concurrent_trials": 1, "n_startup_trials": N, "sampler_seed": 3,
                   "asha": {"enabled": False}, "params": {"toy.lr": {"uniform": [0.05, 0.2]}}}}

#: run_hpo with a Ctrl-C after the first finished trial; prints what the search left behind in
#: this process (the summary, Ray's loopback switch before and after)
INTERRUPTED_SEARCH = """
import json, os, signal, sys
import ray._private.ray_constants as constants
from ray import tune
from raycg.ray_compat import LOOPBACK_ENV
from raycg.study.hpo import run_hpo

class Interrupt(tune.Callback):
    def on_trial_complete(self, iteration, trials, trial, **info):
        os.kill(os.getpid(), signal.SIGINT)

before = (os.environ.get(LOOPBACK_ENV), constants.ENABLE_RAY_CLUSTER)
summary = run_hpo(sys.argv[1], callbacks=[Interrupt()], log=lambda line: None)
print(json.dumps({"complete": summary["complete"], "n_finished": summary["n_finished"], "before": before,
                  "after": [os.environ.get(LOOPBACK_ENV), constants.ENABLE_RAY_CLUSTER]}))
"""


def _env(temp: Path, key: Path) -> dict[str, str]:
    return {**driver_env(temp), KEY_ENV: str(key), "RAYCG_RAY_LOCAL_ONLY": "1"}


def tune_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raycg", "study", "tune", *args], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The search interrupted after one trial (a copy kept), then resumed to the end by the CLI."""
    root = tmp_path_factory.mktemp("hpo_state")
    key = root / "key" / "state.key"
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "storage": str(root / "runs")}))
    study = root / "runs" / "hs"
    temp = short_tmpdir("rcgh")
    env = _env(temp, key)
    try:
        first = subprocess.run([sys.executable, "-c", INTERRUPTED_SEARCH, str(spec)], env=env, capture_output=True,
                               text=True, timeout=600)
        assert first.returncode == 0, first.stderr[-3000:]
        interrupted = json.loads(first.stdout.strip().splitlines()[-1])
        snapshot = root / "interrupted"
        shutil.copytree(study, snapshot / "hs", symlinks=True)
        finished_before = {p.parent.name: p.read_bytes() for p in study.glob("trials/*/result.json")}
        resumed = tune_cli([str(spec)], env)
        summary_only = tune_cli([str(spec), "--summary-only"], env)
    finally:
        end_own_processes(temp)
        shutil.rmtree(temp, ignore_errors=True)
    return {"root": root, "spec": spec, "study": study, "key": key, "snapshot": snapshot, "env": env,
            "interrupted": interrupted, "finished_before": finished_before, "resumed": resumed,
            "summary_only": summary_only}


def test_the_interrupted_search_resumes_to_the_end(searched):
    assert not searched["interrupted"]["complete"] and 1 <= searched["interrupted"]["n_finished"] < N
    r = searched["resumed"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming the search" in r.stderr
    summary = json.loads((searched["study"] / "hpo" / "summary.json").read_text())
    assert summary["complete"] and summary["n_finished"] == N
    assert searched["finished_before"]
    for tid, before in searched["finished_before"].items():  # not run again
        assert (searched["study"] / "trials" / tid / "result.json").read_bytes() == before, tid
    assert searched["key"].is_file() and (searched["study"] / RECORD).is_file()


def test_a_finished_search_is_summarized_again(searched):
    s = searched["summary_only"]
    assert s.returncode == 0, s.stderr[-3000:]
    summary = json.loads((searched["study"] / "hpo" / "summary.json").read_text())
    assert summary["complete"] and summary["n_finished"] == N


def test_the_search_undoes_the_loopback_switch_of_the_ray_it_stopped(searched):
    before, after = searched["interrupted"]["before"], searched["interrupted"]["after"]
    assert before == [None, True]  # Linux: Ray's default, no switch set
    assert after == before


def _poison_copy(searched, tmp_path, where: str) -> tuple[Path, Path]:
    storage = tmp_path / "copy"
    study = storage / "hs"
    shutil.copytree(searched["snapshot"] / "hs", study, symlinks=True)
    marker = tmp_path / "code-ran"
    blob = pickle.dumps(Poison(marker))
    tune = study / "tune"
    if where == "tuner.pkl":
        (tune / "tuner.pkl").write_bytes(blob)
    elif where == "searcher-state":
        states = sorted(tune.glob("searcher-state-*.pkl"))
        assert states, sorted(p.name for p in tune.iterdir())
        states[-1].write_bytes(blob)
    elif where == "params.pkl":
        params = sorted(tune.glob("*/params.pkl"))
        assert params
        params[0].write_bytes(blob)
    else:  # leftover state and no tuner.pkl (a new search would record the pickle as its own)
        (tune / "tuner.pkl").unlink()
        (study / RECORD).unlink()
        (tune / "searcher-state-2099-01-01_00-00-00.pkl").write_bytes(blob)
    return storage, marker


@pytest.mark.parametrize("where", ["tuner.pkl", "searcher-state", "params.pkl", "leftover"])
def test_a_poisoned_search_state_is_refused_before_anything_runs(searched, tmp_path, where):
    storage, marker = _poison_copy(searched, tmp_path, where)
    study = storage / "hs"
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()}
    for extra in ([], ["--summary-only"]) if where in ("tuner.pkl", "leftover") else ([],):
        out = tune_cli([str(searched["spec"]), "--storage", str(storage), *extra], searched["env"])
        assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {study / 'tune'}: "), lines
        assert "will not let Ray Tune unpickle it" in lines[0] and "ray:" not in out.stderr
        assert not marker.exists()
    assert {p: p.read_bytes() for p in study.rglob("*") if p.is_file()} == before  # nothing written

