"""A fresh clone must pass on its own: nothing in the project reads files beside the checkout."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# a path into a sibling folder named "shared": dot-dot-slash form, parents[k] / "<name>", or "..", "<name>"
SIBLING = "sh" + "ared"   # spelled in two parts so that this file does not itself name the folder
PATTERNS = [re.compile(r"\.\./shared\b"), re.compile(r"""["']shared["']\s*\)?\s*/"""),
            re.compile(r"""/\s*["']shared["']""")]


def project_files() -> list[Path]:
    out = []
    for folder in ("raycg", "tests", "benchmarks", "scripts", "studies", ".ci"):
        for p in (ROOT / folder).rglob("*"):
            if p.is_file() and p.suffix in {".py", ".sh", ".yaml", ".yml", ""} and "__pycache__" not in p.parts:
                out.append(p)
    return out


def test_no_project_file_reads_beside_the_checkout():
    offenders = []
    for p in project_files():
        if p.resolve() == Path(__file__).resolve():
            continue
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            if any(rx.search(line) for rx in PATTERNS):
                offenders.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "files beside the checkout are read:\n" + "\n".join(offenders)


def test_pattern_catches_the_old_form():
    old = f'PDB = Path(__file__).resolve().parents[3] / "{SIBLING}" / "data" / "chignolin" / "x.pdb"'
    assert any(rx.search(old) for rx in PATTERNS)
    assert any(rx.search(f"see ../{SIBLING}/DESIGN.md") for rx in PATTERNS)
