"""Command line for lab staff: `python -m pipeline inspect FILE`, `python -m pipeline convert
FILE.c3d --out DIR`. Errors print one line on stderr and exit with status 1; nothing is written.

Other commands register themselves in `build_parser` (argparse subparsers, each with a
`handler(args) -> int`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError

SIDE_NAMES = {"r": "right foot", "l": "left foot", None: "no foot (dropped)"}


def _frame_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--up-axis", default=None, choices=["x", "y", "z", "-x", "-y", "-z"],
                        help="the lab's vertical axis (default: detected from the force plates, "
                             "else from the markers)")
    parser.add_argument("--threshold-n", type=float, default=20.0,
                        help="vertical force below which a plate is unloaded (N, default 20)")
    parser.add_argument("--foot-markers", default=None,
                        help="comma-separated substrings naming foot markers (default "
                             "HEE,HEEL,CAL,TOE,MT,MH with an R/L prefix)")


def _foot_markers(args):
    return [s.strip() for s in args.foot_markers.split(",") if s.strip()] \
        if args.foot_markers else None


# ------------------------------------------------------------------------------- inspect

def _inspect(args) -> int:
    from pipeline.c3d import read_c3d
    from pipeline.ingest import load_trial
    from pipeline.signal import gap_table

    path = Path(args.file)
    trial = load_trial(path, up_axis=args.up_axis, threshold_n=args.threshold_n,
                       foot_markers=_foot_markers(args))
    m, meta = trial.markers, trial.meta
    how = "detected" if meta.get("up_axis_detected") else "given"
    print(f"{path.name}: {meta['format'].upper()} file, marker units {meta['lab_units']}, "
          f"lab up axis {meta['up_axis']} ({how}; turned onto OpenSim's +Y)")
    n = len(trial.marker_names)
    print(f"markers: {n} at {trial.rate_hz:g} Hz, {len(m)} frames, "
          f"{m.index[-1] - m.index[0]:.3f} s")
    print("  " + " ".join(trial.marker_names))
    gaps = gap_table(m)
    with_gaps = gaps[gaps.missing_frames > 0]
    print(f"gaps: {len(with_gaps)} of {n} markers have missing frames")
    if len(with_gaps):
        print(f"  {'marker':<16}{'missing':>9}{'gaps':>6}{'longest':>9}{'longest s':>11}")
        for row in with_gaps.itertuples():
            print(f"  {row.Index:<16}{row.missing_frames:>9d}{row.gaps:>6d}"
                  f"{row.longest_gap_frames:>9d}{row.longest_gap_s:>11.3f}")
    contacts = meta.get("contacts", [])
    if meta["format"] == "c3d":
        rec = read_c3d(path, threshold_n=args.threshold_n)
        print(f"force plates: {len(rec.plates)}" +
              (f" at {rec.analog_rate:g} Hz" if rec.plates else ""))
        for p in rec.plates:
            c = p.centre
            print(f"  plate {p.index}: type {p.type}, centre ({c[0]:.3f}, {c[1]:.3f}, "
                  f"{c[2]:.3f}) m in the lab frame, peak vertical force "
                  f"{np.max(p.vertical_force):.0f} N")
            _print_contacts([x for x in contacts if x["label"] == f"plate{p.index}"])
    elif meta.get("grf_file"):
        print(f"forces: {Path(meta['grf_file']).name}")
        for label in dict.fromkeys(x["label"] for x in contacts):
            print(f"  {label}:")
            _print_contacts([x for x in contacts if x["label"] == label])
    else:
        print("forces: none (no force plates, no _grf.mot beside the file)")
    return 0


def _print_contacts(contacts) -> None:
    if not contacts:
        print("    never loaded")
    for x in contacts:
        d = f", {x['distance_m'] * 100:.0f} cm from the foot markers" \
            if np.isfinite(x["distance_m"]) else ""
        print(f"    loaded {x['start_s']:.3f}-{x['end_s']:.3f} s -> "
              f"{SIDE_NAMES.get(x['side'], x['side'])}{d}")


# ------------------------------------------------------------------------------- convert

def convert_c3d(path, out_dir, *, up_axis=None, threshold_n=20.0, foot_markers=None,
                columns: str = "auto") -> list[Path]:
    """Write `<trial>.trc` (mm, OpenSim frame) and `<trial>_grf.mot` (N, m, N·m at the analog
    rate, Y up) for a C3D file; returns the paths written. columns: "foot" (`ground_force_r_vx`
    ..., as grf_walk.mot), "plate" (`ground_force_vx`, `1_ground_force_vx` ...), or "auto" (per
    foot when every contact could be given to a foot, else per plate). Files appear only once
    both are complete (written to a temporary folder in `out_dir`, then renamed)."""
    from pipeline.c3d import read_c3d
    from pipeline.foot_grf import assign_feet, foot_grf, plate_table, series_from_plate
    from pipeline.ingest import (
        DEFAULT_MAX_FOOT_DISTANCE_M,
        DEFAULT_MIN_CONTACT_S,
        opensim_rotation,
        rotate_markers,
    )
    from pipeline.opensim_files import write_mot, write_trc

    path, out_dir = Path(path), Path(out_dir)
    if path.suffix.lower() != ".c3d":
        raise PipelineError(f"convert reads .c3d files, not {path.suffix or 'this file'}",
                            file=path)
    rec = read_c3d(path, threshold_n=threshold_n)
    _, _, rotation = opensim_rotation(rec.markers, rec.plates, up_axis)
    markers = rotate_markers(rec.markers, rotation)
    grf = None
    if rec.plates:
        series = [series_from_plate(p, rotation) for p in rec.plates]
        times = series[0].times
        use_feet = columns == "foot"
        if columns in ("foot", "auto"):
            try:
                contacts = assign_feet(series, markers, foot_markers=foot_markers,
                                       threshold_n=threshold_n,
                                       min_contact_s=DEFAULT_MIN_CONTACT_S,
                                       max_distance_m=DEFAULT_MAX_FOOT_DISTANCE_M, file=path)
            except PipelineError:
                if columns == "foot":
                    raise
                contacts = []
            use_feet = use_feet or (bool(contacts) and all(c["side"] for c in contacts))
        grf = (foot_grf(series, contacts, times, threshold_n=threshold_n) if use_feet
               else plate_table(series, threshold_n=threshold_n))
        grf = grf.fillna(0.0)  # OpenSim wants numbers: CoP 0 where the force is 0

    out_dir.mkdir(parents=True, exist_ok=True)
    trial = path.stem
    targets = [out_dir / f"{trial}.trc"] + ([out_dir / f"{trial}_grf.mot"] if grf is not None
                                            else [])
    staging = Path(tempfile.mkdtemp(prefix="_convert-", dir=out_dir))
    try:
        write_trc(staging / targets[0].name, markers * 1000.0, units="mm",
                  data_rate=rec.point_rate)
        if grf is not None:
            write_mot(staging / targets[1].name, grf, in_degrees=False, name=targets[1].name)
        for target in targets:
            os.replace(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return targets


def _convert(args) -> int:
    written = convert_c3d(args.file, args.out, up_axis=args.up_axis,
                          threshold_n=args.threshold_n, foot_markers=_foot_markers(args),
                          columns=args.columns)
    for p in written:
        print(f"wrote {p}")
    return 0


# ---------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="Motion-capture trial tools for lab staff.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("inspect", help="summarise a trial: markers, gaps, force plates")
    p.add_argument("file", help=".c3d or .trc (with <trial>_grf.mot beside it)")
    _frame_options(p)
    p.set_defaults(handler=_inspect)
    p = sub.add_parser("convert", help="C3D to OpenSim's <trial>.trc and <trial>_grf.mot")
    p.add_argument("file", help="the .c3d file")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--columns", choices=["auto", "foot", "plate"], default="auto",
                   help="GRF columns per foot (ground_force_r_vx ...) or per plate "
                        "(ground_force_vx, 1_ground_force_vx ...); default auto")
    _frame_options(p)
    p.set_defaults(handler=_convert)
    _synth_parser(sub)
    return parser


def _synth_parser(sub) -> None:
    """`python -m pipeline synth --out DIR`: write the built-in synthetic cohort (docs/cohort.md)."""
    from pipeline import cohort

    p = sub.add_parser("synth", help="write the built-in synthetic cohort as raw lab data")
    cohort.add_arguments(p)
    p.set_defaults(handler=cohort.run)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
    except BrokenPipeError:  # output piped into `head`: not an error of ours
        return 0
    except OSError as err:
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "),
              file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
