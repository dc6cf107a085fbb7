"""Command line of the warehouse.

    python -m warehouse check [--warehouse DIR] [--artifacts DIR] [--clean] [--min-age-s S]
    python -m warehouse failures [--warehouse DIR]

`check` exits 0 when the warehouse is whole (warnings allowed) and 1 with the list of problems;
`failures` prints failures.parquet (what failed, where, and what to do) and exits 1 if it is not
empty. Without --warehouse/--artifacts the `[paths]` of luigi.cfg are used (LUIGI_CONFIG_PATH, else
./luigi.cfg), as the tasks do.
"""
from __future__ import annotations

import argparse
import configparser
import os
import sys
from pathlib import Path

from .catalog import read_catalog
from .check import PROBLEM, check_artifacts, check_warehouse, clean

DEFAULTS = {"warehouse": "data/warehouse", "artifacts": "data/artifacts"}


def configured(key: str) -> str:
    """[paths] <key> the way Luigi resolves it: ./luigi.cfg, then LUIGI_CONFIG_PATH on top."""
    config = configparser.ConfigParser()
    config.read([p for p in ("luigi.cfg", os.environ.get("LUIGI_CONFIG_PATH", "")) if p])
    return config.get("paths", key, fallback=DEFAULTS[key])


def _check(args) -> int:
    warehouse = Path(args.warehouse or configured("warehouse"))
    findings = check_warehouse(warehouse)
    artifacts = args.artifacts or (None if args.warehouse else configured("artifacts"))
    if artifacts and Path(artifacts).exists():
        findings += check_artifacts(artifacts)
    if args.clean:
        for path in clean(findings, args.min_age_s):
            print(f"removed {path}")
        findings = check_warehouse(warehouse) + (check_artifacts(artifacts) if artifacts and
                                                 Path(artifacts).exists() else [])
    for finding in findings:
        print(finding)
    problems = sum(f.level == PROBLEM for f in findings)
    print(f"warehouse {warehouse}: {problems} problem(s), {len(findings) - problems} warning(s)"
          + ("" if problems else " - OK"))
    return 1 if problems else 0


def _failures(args) -> int:
    warehouse = Path(args.warehouse or configured("warehouse"))
    failures = read_catalog(warehouse, "failures")
    if failures.empty:
        print(f"no failures recorded in {warehouse}")
        return 0
    for row in failures.sort_values(["subject", "trial", "stage"]).itertuples():
        print(f"{row.subject}/{row.trial} [{row.stage}] {row.problem}\n"
              f"    file: {row.file or '-'}\n    what to do: {row.hint or '-'}")
    print(f"{len(failures)} failure(s) in {warehouse / 'failures.parquet'}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m warehouse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="verify leaves, catalog, schemas, provenance")
    check.add_argument("--warehouse", help="warehouse root (default: luigi.cfg [paths])")
    check.add_argument("--artifacts", help="artifacts root (default: luigi.cfg [paths] unless "
                       "--warehouse is given)")
    check.add_argument("--clean", action="store_true",
                       help="delete staging leftovers older than --min-age-s")
    check.add_argument("--min-age-s", type=float, default=3600.0,
                       help="leave younger staging files alone: a writer may still be running")
    check.set_defaults(run=_check)
    failures = commands.add_parser("failures", help="list failures.parquet")
    failures.add_argument("--warehouse")
    failures.set_defaults(run=_failures)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
