"""The ``raycg`` command: thin argument parsing that calls the stage APIs.

Command groups (``data``, ``priors``, ``train``, ``sim``, ``eval``, ``analyze``, ``study``,
``cluster``) are filled by the modules in :data:`COMMAND_MODULES`; each module exposes
``register(groups)`` where ``groups`` maps a group name to an argparse sub-parsers object (or
``"<top>"`` for top-level commands). Handlers import heavy libraries lazily so ``--help`` is fast.

Any :class:`raycg.errors.InputError`, and any argument the parser rejects, becomes one line on
stderr (``error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from raycg import __version__
from raycg.errors import InputError

GROUPS = {
    "data": "datasets: import, validate, inspect, synthesise, generate all-atom references",
    "priors": "classical prior terms fitted by Boltzmann inversion",
    "eval": "reference TICA and free-energy scoring of trajectories",
    "sim": "Langevin simulation of trained models",
    "study": "energy-weight x seed studies on Ray Tune",
    "cluster": "local fake multi-node Ray clusters for trying autoscaling",
}

COMMAND_MODULES = (
    "raycg.cli.data",
    "raycg.cli.priors",
    "raycg.cli.synth",
    "raycg.cli.sim",
    "raycg.cli.train",
    "raycg.cli.evaluate",
    "raycg.cli.analyze",
    "raycg.cli.study",
    "raycg.cli.study_tune",
    "raycg.cli.cluster",
    "raycg.cli.allatom",
    "raycg.cli.export",
)


class Parser(argparse.ArgumentParser):
    """argparse, but a rejected argument is one line (``error: PROG: message; see PROG --help``), exit 2,
    and options are never abbreviated (``--gpus`` must not silently become ``--gpus-per-worker``).

    Sub-parsers inherit the class (argparse makes them with ``type(parent)``).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message.splitlines()[0] if message else 'bad arguments'}; "
                     f"see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="raycg",
        description="raycg: train CGSchNet with TICA free-energy matching, simulate, score, and "
                    "decide with significance tests; distributed on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"raycg {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {"<top>": top}
    for name, help_text in GROUPS.items():
        p = top.add_parser(name, help=help_text, description=help_text)
        groups[name] = p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        p.set_defaults(_group_parser=p)
    for mod_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:  # a stage not built yet
            if exc.name == mod_name:
                continue
            raise
        mod.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        group_parser = getattr(args, "_group_parser", None)
        (group_parser or parser).print_help()
        return 0 if args.command is None else 2
    try:
        rc = handler(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
