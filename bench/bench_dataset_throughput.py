"""Dataset throughput: the same trials through BuildDataset with 1 and with 2 Luigi workers.

    .venv/bin/python bench/bench_dataset_throughput.py [--subjects 2] [--activities squat_short_01 walk_short_01]

Writes a synthetic cohort once (subjects x activities trials), then builds it from scratch twice,
each time into its own warehouse and artifacts: first with `--workers 1`, then with
`--workers 2`. Each Moco solve runs in its own process on one thread, so two workers should
approach twice the throughput on two idle cores. Prints trials per hour for each and the ratio
(2 workers / 1 worker), measured in the same run (the machine is shared: compare ratios).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WELD = ["mtp_r", "mtp_l", "acromial_r", "acromial_l", "elbow_r", "elbow_l", "radioulnar_r",
        "radioulnar_l", "radius_hand_r", "radius_hand_l"]


def _config(root: Path, raw: Path, tag: str) -> Path:
    path = root / f"luigi_{tag}.cfg"
    path.write_text(f"""[paths]
raw = {raw}
warehouse = {root / tag / 'warehouse'}
artifacts = {root / tag / 'artifacts'}

[TrackMoco]
weld_joints = {json.dumps(WELD)}
""")
    return path


def _build(config: Path, workers: int) -> tuple[float, bool]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "tasks", "BuildDataset", "--local-scheduler",
         "--workers", str(workers), "--log-level", "WARNING"],
        cwd=REPO, env={**__import__("os").environ, "LUIGI_CONFIG_PATH": str(config)},
        capture_output=True, text=True)
    seconds = time.perf_counter() - started
    ok = done.returncode == 0  # luigi.cfg's [retcode] makes any failure a non-zero exit
    if not ok:
        print((done.stdout + done.stderr)[-3000:])
    return seconds, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--activities", nargs="+", default=["squat_short_01", "walk_short_01"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from pipeline.cohort import write_cohort

    root = Path(tempfile.mkdtemp(prefix="bench_throughput_"))
    raw = root / "raw"
    write_cohort(raw, n_subjects=args.subjects, seed=args.seed, activities=args.activities)
    trials = args.subjects * len(args.activities)
    rows = []
    for workers in (1, 2):
        seconds, ok = _build(_config(root, raw, f"w{workers}"), workers)
        rows.append((workers, seconds, ok))
        print(f"workers {workers}: {trials} trials in {seconds:.0f} s "
              f"({3600 * trials / seconds:.1f} trials/h){'' if ok else '  (FAILED: see above)'}",
              flush=True)
    ratio = rows[0][1] / rows[1][1]
    print(f"throughput ratio, 2 workers / 1 worker: {ratio:.2f}x  ({trials} trials: "
          f"{args.subjects} subjects x {', '.join(args.activities)}; scratch {root})")


if __name__ == "__main__":
    main()
