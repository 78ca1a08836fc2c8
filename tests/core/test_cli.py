"""The raycg command: help everywhere, python -m equivalence, input errors exit 2."""

import subprocess
import sys

import pytest

from raycg.cli import GROUPS, build_parser, main


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    for group in GROUPS:
        assert group in out


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_help(group, capsys):
    with pytest.raises(SystemExit) as ex:
        main([group, "--help"])
    assert ex.value.code == 0


def test_every_subcommand_has_help():
    parser = build_parser()
    seen = 0
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            seen += 1
            sub.format_help()
            for a in sub._actions:
                if hasattr(a, "choices") and isinstance(a.choices, dict):
                    for leaf in a.choices.values():
                        assert leaf.description or leaf.format_help(), name
    assert seen >= len(GROUPS)


def test_python_dash_m_equivalent():
    out = subprocess.run([sys.executable, "-m", "raycg", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("raycg ")


def test_input_error_becomes_exit_2(capsys, monkeypatch):
    from raycg.errors import InputError

    def boom(args):
        raise InputError("bad thing", where="f.npy", hint="do this")

    parser = build_parser()
    monkeypatch.setattr("raycg.cli.build_parser", lambda: parser)
    sub = parser._subparsers._group_actions[0].choices["data"]
    grp = [a for a in sub._actions if isinstance(getattr(a, "choices", None), dict)][0]
    p = grp.add_parser("boom-test")
    p.set_defaults(handler=boom)
    assert main(["data", "boom-test"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: f.npy: bad thing; do this"
