"""Bad input to ``raycg export`` and ``raycg sim run --engine``: one line, exit status 2, inputs untouched.

Cases as in tests/core/bad_input_corpus.py: a command line as typed (``{root}``: the inputs,
``{out}``: a fresh output path that must not exist afterwards), the inputs it reads (hashed before
and after), the words the error line must contain, and what is broken in the environment.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from raycg.cli import main

openmm = pytest.importorskip(
    "openmm", reason="needs the openmm extra (pip install 'raycg[openmm]')"
)
pytestmark = pytest.mark.openmm


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    inputs: tuple[str, ...]
    needles: tuple[str, ...]
    #: what the environment lacks: "" (nothing), "pythonforce" (an OpenMM without PythonForce),
    #: "openmmtorch" (openmmtorch does not import)
    broken: str = ""


SIM = ("sim", "run", "--n-replicas", "2", "--n-steps", "20", "--save-every", "10", "--no-progress")
CASES = [
    Case("export-model-version", ("export", "{root}/newer", "--dataset", "{root}/ds", "--out", "{out}"),
         ("newer", "ds"), ("model format version 99 is newer", "upgrade raycg")),
    Case("sim-openmm-model-version", (*SIM, "{root}/newer", "--dataset", "{root}/ds", "--out", "{out}",
                                      "--engine", "openmm"),
         ("newer", "ds"), ("model format version 99 is newer",)),
    Case("export-bead-count", ("export", "{root}/model", "--dataset", "{root}/ds6", "--out", "{out}"),
         ("model", "ds6"), ("the model has 10 beads but the dataset's topology has 6",)),
    Case("sim-openmm-bead-count", (*SIM, "{root}/model", "--dataset", "{root}/ds6", "--out", "{out}",
                                   "--engine", "openmm"),
         ("model", "ds6"), ("the model has 10 beads but the start positions have 6", "trained on")),
    Case("sim-raycg-bead-count", (*SIM, "{root}/model", "--dataset", "{root}/ds6", "--out", "{out}"),
         ("model", "ds6"), ("the model has 10 beads but the start positions have 6",)),
    Case("export-no-pythonforce", ("export", "{root}/model", "--dataset", "{root}/ds", "--out", "{out}"),
         ("model", "ds"), ("has no openmm.PythonForce", "upgrade OpenMM"), broken="pythonforce"),
    Case("sim-openmm-no-pythonforce", (*SIM, "{root}/model", "--dataset", "{root}/ds", "--out", "{out}",
                                       "--engine", "openmm"),
         ("model", "ds"), ("has no openmm.PythonForce",), broken="pythonforce"),
    Case("export-torchforce-no-openmmtorch",
         ("export", "{root}/model", "--dataset", "{root}/ds", "--out", "{out}", "--check", "--check-frames",
          "5", "--torchforce"),
         ("model", "ds"), ("openmmtorch does not import", "OpenMM-Torch"), broken="openmmtorch"),
    Case("sim-openmm-resumes-raycg-run", (*SIM, "{root}/model", "--dataset", "{root}/ds", "--out",
                                          "{root}/cut_raycg", "--engine", "openmm"),
         ("model", "ds", "cut_raycg"),
         ("written by engine raycg, this run uses engine openmm", "--engine raycg")),
    Case("sim-raycg-resumes-openmm-run", (*SIM, "{root}/model", "--dataset", "{root}/ds", "--out",
                                          "{root}/cut_openmm"),
         ("model", "ds", "cut_openmm"),
         ("written by engine openmm, this run uses engine raycg", "--engine openmm")),
]


def _digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def corpus(inputs):
    """ROOT with model, ds (from the shared fixture), newer (model.json format_version 99), ds6 (a
    6-bead dataset), cut_raycg and cut_openmm (runs of each engine interrupted after their first
    checkpoint)."""
    from raycg._testing.datasets import two_state_dataset
    from raycg.data.format import save
    from raycg.model import load_model
    from raycg.sim import SimulationConfig, simulate

    root, ds = inputs
    if not (root / "newer").exists():
        shutil.copytree(root / "model", root / "newer")
        meta = json.loads((root / "newer" / "model.json").read_text())
        meta["format_version"] = 99
        (root / "newer" / "model.json").write_text(json.dumps(meta))
        six, _ = two_state_dataset(n_traj=2, length=50, seed=1, n_beads=6)
        save(six, root / "ds6")

        def stop(step, out_dir):
            raise KeyboardInterrupt

        cfg = SimulationConfig(n_steps=40, save_every=10, checkpoint_every=20, compile=False, seed=0)
        for engine, kw in (("raycg", {}), ("openmm", {"workers": 1})):
            with pytest.raises(KeyboardInterrupt):
                simulate(load_model(root / "model"), ds.masses, ds.coords[[0, 300]],
                         cfg.model_copy(update={"engine": engine}), out_dir=root / f"cut_{engine}",
                         topology=ds.topology(), progress=False, on_checkpoint=stop, **kw)
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2(case, corpus, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = [a.format(root=corpus, out=out) for a in case.argv]
    before = {name: _digest(corpus / name) for name in case.inputs}
    if case.broken == "pythonforce":
        monkeypatch.delattr(openmm, "PythonForce")
    elif case.broken == "openmmtorch":
        monkeypatch.setitem(sys.modules, "openmmtorch", None)  # import openmmtorch -> ImportError
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in case.needles:
        assert needle in err, (needle, err)
    assert not out.exists()
    assert {name: _digest(corpus / name) for name in case.inputs} == before


def test_the_corpus_cases_pass_on_good_input(corpus, tmp_path, capsys):
    """The same command lines with the broken part fixed succeed (the failures above are the cases'),
    and ``sim run``'s check of OUT reads either engine's interrupted run as raycg's (resumable)."""
    from raycg.sim.output import unreadable_output

    root = corpus
    assert unreadable_output(root / "cut_raycg") is None and unreadable_output(root / "cut_openmm") is None
    assert main(["export", str(root / "model"), "--dataset", str(root / "ds"), "--out", str(tmp_path / "e")]) == 0
    assert main([*SIM, str(root / "model"), "--dataset", str(root / "ds"), "--out", str(tmp_path / "s"),
                 "--engine", "openmm"]) == 0
    assert main([*SIM, str(root / "model"), "--dataset", str(root / "ds"), "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()


def _system_xml_of_version(tmp_path: Path, version: int, model) -> Path:
    """An export-like directory whose system.xml's raycg PythonForce has format ``version``."""
    from raycg.export import potential

    old = potential.PACK_VERSION
    potential.PACK_VERSION = version  # the force is pickled when the PythonForce is made
    try:
        system = potential.to_openmm(model, np.full(model.n_beads, 12.0))
    finally:
        potential.PACK_VERSION = old
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "system.xml"
    path.write_text(openmm.XmlSerializer.serialize(system))
    return path


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_system_xml_raycg_did_not_write_is_never_unpickled(inputs, tmp_path):
    """read_system_xml and check_export refuse a system.xml whose bytes are not the ones raycg
    recorded, before unpickling: a poisoned PythonForce pickle creates no marker."""
    import pickle

    from raycg.errors import InputError
    from raycg.export import check_export, read_system_xml
    from raycg.model import load_model

    root, ds = inputs
    good = _system_xml_of_version(tmp_path / "a", 1, model := load_model(root / "model"))
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Marker(str(marker))).hex()
    text = good.read_text()
    start = text.index('function="') + len('function="')
    poisoned = tmp_path / "p" / "system.xml"
    poisoned.parent.mkdir()
    poisoned.write_text(text[:start] + payload + text[text.index('"', start):])
    for call in (lambda: read_system_xml(poisoned, sha256=_sha(good)),
                 lambda: check_export(poisoned.parent, ds, system_sha256=_sha(good), model_dir=root / "model",
                                      n_frames=2)):
        with pytest.raises(InputError, match="not the system.xml raycg wrote") as exc:
            call()
        assert "\n" not in str(exc.value) and not marker.exists()
    assert model.n_beads == 10


class _Marker:
    """Unpickling it creates the file ``path``."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_system_xml_of_another_version_is_one_line_not_a_crash(inputs, tmp_path):
    """A system.xml whose PythonForce was written by another raycg version: raycg's reader refuses it
    in one line; plain OpenMM deserialises it (no crash) and fails on evaluation with the same line."""
    from raycg.errors import InputError
    from raycg.export import read_system_xml
    from raycg.model import load_model

    root, ds = inputs
    model = load_model(root / "model")
    good = _system_xml_of_version(tmp_path / "a", 1, model)
    assert read_system_xml(good, sha256=_sha(good)).getNumParticles() == 10
    bad = _system_xml_of_version(tmp_path / "b", 2, model)
    with pytest.raises(InputError) as exc:
        read_system_xml(bad, sha256=_sha(bad))
    msg = str(exc.value)
    assert "PythonForce format version 2; this raycg reads version 1" in msg and "\n" not in msg
    code = (
        "import openmm\n"
        f"s = openmm.XmlSerializer.deserialize(open({str(bad)!r}).read())\n"
        "c = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName('Reference'))\n"
        f"c.setPositions({(ds.coords[0].astype(float) * 0.1).tolist()!r})\n"
        "try:\n"
        "    c.getState(getEnergy=True)\n"
        "except openmm.OpenMMException as exc:\n"
        "    print('refused:', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "refused:" in proc.stdout and "format version 2" in proc.stdout
    from raycg.export import check_export

    (tmp_path / "c").mkdir()
    shutil.copy(bad, tmp_path / "c" / "system.xml")
    with pytest.raises(InputError, match="format version 2"):
        check_export(tmp_path / "c", ds, system_sha256=_sha(bad), model_dir=root / "model", n_frames=2)
