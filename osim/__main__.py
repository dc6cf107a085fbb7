"""Command line for the OpenSim side: `python -m osim <command> ...`.

Commands register themselves in COMMANDS: a function that adds one subparser and sets `run`
(a callable taking the parsed arguments and returning an exit code). Errors of this project
(PipelineError and subclasses) become one line on stderr and exit code 2.

    python -m osim build-model --height 1.75 --mass 70 --sex F --out model.osim
    python -m osim export-tree model.osim --out tree.json
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pipeline.errors import PipelineError


def _add_build_model(subparsers) -> None:
    p = subparsers.add_parser(
        "build-model", help="write the built-in full-body model for a subject",
        description="Write the built-in full-body model (Rajagopal topology, de Leva segments, "
                    "foot contact, torque actuators) sized for one subject.")
    p.add_argument("--height", type=float, required=True, help="stature, m (1.0-2.5)")
    p.add_argument("--mass", type=float, required=True, help="body mass, kg (20-250)")
    p.add_argument("--sex", required=True, help="F or M (female/male)")
    p.add_argument("--out", required=True, help="output .osim path")
    p.add_argument("--name", default=None, help="model name (default: derived from the subject)")
    p.set_defaults(run=_run_build_model)


def _run_build_model(args) -> int:
    from osim.builtin_model import build_model, write_model  # opensim loads only when needed

    model = build_model(args.height, args.mass, args.sex, name=args.name)
    path = write_model(model, args.out)
    print(f"wrote {path} ({model.getNumCoordinates()} coordinates, "
          f"{model.getNumBodies()} bodies, {model.getMarkerSet().getSize()} markers)")
    return 0


def _add_export_tree(subparsers) -> None:
    p = subparsers.add_parser(
        "export-tree", help="write a model's multibody tree as JSON for models/ (torch)",
        description="Export bodies, joints, coordinates, markers and contact spheres of an "
                    "OpenSim model to the JSON that models.dynamics.Multibody.from_json reads.")
    p.add_argument("model", help=".osim file")
    p.add_argument("--out", required=True, help="output .json path")
    p.set_defaults(run=_run_export_tree)


def _run_export_tree(args) -> int:
    from osim.export_tree import write_tree

    path = write_tree(args.model, args.out)
    print(f"wrote {path}")
    return 0


#: Subcommand registry: other modules append their `_add_<command>` functions here.
COMMANDS: list[Callable] = [_add_build_model, _add_export_tree]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m osim", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
