"""Ingest speed: our `load_trial` on a C3D file against a bare `ezc3d.c3d(path)` read, same run.

    .venv/bin/python bench/bench_ingest.py [--file walking5.c3d] [--repeat 20]

Prints marker frames per second for: the bare ezc3d read (the floor: file parsing only), our
`read_c3d` (validation, gaps, units, force plates at the analog rate) and `load_trial` (all of
that plus the frame rotation, plate-to-foot assignment, anti-alias filter and resampling of the
GRFs to the marker times), and the ratio of each to the bare read.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT = REPO.parent / "shared" / "data" / "opensim-core" / "c3d" / "walking5.c3d"


def _time(fn, repeat: int) -> float:
    """Median seconds per call over `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    import ezc3d

    from pipeline.c3d import read_c3d
    from pipeline.ingest import load_trial

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"reference file not found: {args.file}", file=sys.stderr)
        return 1
    path = str(args.file)
    rec = read_c3d(path)
    frames = rec.n_frames
    print(f"{args.file.name}: {frames} frames, {len(rec.markers.columns) // 3} markers at "
          f"{rec.point_rate:g} Hz, {len(rec.plates)} plates at {rec.analog_rate:g} Hz; "
          f"median of {args.repeat} runs; Python {platform.python_version()}, "
          f"ezc3d {ezc3d.__version__ if hasattr(ezc3d, '__version__') else '?'}")
    runs = [("ezc3d.c3d(path) (bare read)", lambda: ezc3d.c3d(path)),
            ("pipeline.c3d.read_c3d", lambda: read_c3d(path)),
            ("pipeline.ingest.load_trial", lambda: load_trial(path))]
    base = None
    for name, fn in runs:
        seconds = _time(fn, args.repeat)
        fps = frames / seconds
        base = base or fps
        print(f"  {name:<30} {seconds * 1e3:8.1f} ms/trial {fps:10.0f} frames/s "
              f"{fps / base:6.2f}x of bare ezc3d")
    return 0


if __name__ == "__main__":
    sys.exit(main())
