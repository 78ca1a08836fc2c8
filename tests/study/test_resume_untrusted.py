"""``raycg study resume``, ``status`` and ``analyze`` of a folder received from someone else run
none of its pickles.

Every pickle-looking file a study folder can hold (Tune's ``tuner.pkl`` and experiment state, a
searcher state, files inside a trial's checkpoint) is replaced by one whose unpickling creates a
marker file; the folder's status is read, the study is resumed to the end on a local Ray, its status
read and its analysis run again, and the marker must not exist after any of them.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raycg.study.driver import create_study
from raycg.study.spec import spec_from_any

from .conftest import end_own_processes, short_tmpdir

pytestmark = pytest.mark.ray


class Poison:
    """Unpickling it creates ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def poison_folder(study: Path, marker: Path) -> list[Path]:
    blob = pickle.dumps(Poison(marker))
    places = [study / "tune" / "tuner.pkl", study / "tune" / "run-old" / "tuner.pkl",
              study / "tune" / "run-old" / "searcher-state-2026.pkl",
              study / "tune" / "run-old" / "w0_s0" / "checkpoint_000001" / "state.pkl",
              study / "trials" / "w0_s0" / "checkpoints" / "000001" / "model.pkl",
              study / "trials" / "w0_s0" / "error.pkl"]
    for p in places:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)
    (study / "tune" / "run-old" / "experiment_state-2026.json").write_text(
        '{"trial_data": [["{}", "' + blob.hex() + '"]]}')
    return places


def test_the_poison_works_when_unpickled(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Poison(marker)))
    assert marker.exists()


def test_resume_runs_no_pickle_of_the_folder(tmp_path):
    spec = spec_from_any({"name": "gift", "pipeline": "toy", "storage": str(tmp_path),
                          "grid": {"energy_weights": [0.0, 1.0], "seeds": 1},
                          "toy": {"epochs": 2, "epoch_s": 0.0, "chunks": 1, "chunk_s": 0.0},
                          "resources": {"cpus": 1}})
    study = tmp_path / "gift"
    create_study(spec, str(study), log=lambda s: None)
    marker = tmp_path / "code-ran"
    places = poison_folder(study, marker)
    temp = short_tmpdir("rcgu")
    env = {"RAY_AUTH_MODE": "disabled", "RAYCG_RAY_TEMP_DIR": str(temp), "RAYCG_RAY_NUM_CPUS": "2",
           "PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "RAYCG_STATE_KEY_FILE": str(tmp_path / "state.key")}

    def study_cli(*args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "raycg", "study", *args], env=env, capture_output=True,
                             text=True, timeout=600)
        assert not marker.exists(), args
        return out

    try:
        status_before = study_cli("status", str(study), "--json")
        out = study_cli("resume", str(study))
        status_after = study_cli("status", str(study))
        analyzed = study_cli("analyze", str(study))
    finally:
        end_own_processes(temp)
        shutil.rmtree(temp, ignore_errors=True)
    assert status_before.returncode == 0, status_before.stderr[-3000:]
    st = json.loads(status_before.stdout)
    assert st["n_trials"] == 2 and st["done"] == 0, st
    assert out.returncode == 0, out.stderr[-3000:]
    assert status_after.returncode == 0 and "trials: 2/2 done" in status_after.stdout, status_after.stdout
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    assert not marker.exists()
    assert ((study / "trials" / "w0_s0" / "result.json").is_file()
            and (study / "trials" / "w1_s0" / "result.json").is_file())
    assert all(p.read_bytes() == pickle.dumps(Poison(marker)) for p in places if p.exists())
