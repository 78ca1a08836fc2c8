"""Every command, fed malformed input, answers with one line ``error: ...`` on stderr and exit 2;
its inputs stay byte-identical and no output (not even a partial one) is left behind.

Commands run in-process through ``raycg.cli.main`` (the same argv a user types); the cluster cases,
which fail while parsing arguments, run as ``python -m raycg`` subprocesses.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raycg.cli import main

from .bad_input_corpus import CASES, Case, build_inputs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_inputs(tmp_path_factory.mktemp("corpus") / "in")


def _digest(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _run(case: Case, argv: list[str], capfd) -> tuple[object, str]:
    if case.subprocess:
        env = dict(os.environ, RAY_AUTH_MODE="disabled")
        try:
            p = subprocess.run([sys.executable, "-m", "raycg", *argv], capture_output=True, text=True, env=env,
                               timeout=case.timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hung: no answer within {case.timeout:g} s")
        return p.returncode, p.stderr
    capfd.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    except Exception as exc:  # noqa: BLE001 - a traceback is exactly what the corpus looks for
        rc = f"uncaught {type(exc).__name__}: {str(exc)[:200]}"
    return rc, capfd.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_one_line_exit_2_inputs_untouched(corpus, case, capfd):
    out = corpus.parent / "out" / case.id
    argv = [a.format(root=corpus, out=out) for a in case.argv]
    inputs = [corpus / p for p in case.inputs]
    before = {str(p): _digest(p) for p in inputs}
    rc, err = _run(case, argv, capfd)
    lines = err.strip().splitlines()
    assert rc == 2, f"exit {rc}; stderr: {err[-600:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-600:]
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])
    assert {str(p): _digest(p) for p in inputs} == before, "an input changed"
    assert not out.exists(), f"left output behind: {sorted(os.listdir(out)) if out.is_dir() else out}"
    if case.id.startswith("study-"):
        import ray

        assert not ray.is_initialized() and not (corpus / "study_storage").exists()


def test_corpus_covers_every_command():
    firsts = {" ".join(a for a in c.argv[:3] if not a.startswith("{")) for c in CASES}
    for cmd in ("data info", "data validate", "data import torchmd-cg", "priors fit", "train", "sim run",
                "eval score", "study run", "study resume", "study tune", "cluster local up"):
        assert any(f == cmd or f.startswith(cmd + " ") or f.startswith(cmd) for f in firsts), cmd
    assert len({c.id for c in CASES}) == len(CASES)
