"""Both ground-truth engines on the same windows: wall time, IPOPT iterations, agreement.

    .venv/bin/python bench/bench_engines.py [WINDOW_DIR ...] [--rerun-moco] [--out FILE.json]

A WINDOW_DIR is a TrackMoco window folder (`spec.json`, and unless --rerun-moco a converged
`result.json`, `kinematics.sto`, `kinetics.sto`); by default every converged squat window of
the development warehouse (/work/devdata/artifacts/TrackMoco/*/squat_short_01/*/window_0).
For each: the model's tree is exported here (this process imports opensim, never casadi), the
CasADi engine runs in its own process (`python -m collocation`, one thread, DESIGN.md trap 2)
on the same spec, and the two solutions are compared on Moco's grid:
- coordinates: RMS difference, degrees, worst rotational coordinate;
- joint torques: RMS difference, N*m, worst non-pelvis `<c>_moment`;
- vertical GRF: RMS difference per foot, % body weight, worse foot.
Acceptance (issue 9): 1 deg, 3 N*m, 3 % BW. --warm also starts the CasADi engine from Moco's
solution (spec `guess`): where it stays there, both engines have the same optimum of the same
NLP, whatever optimum a cold start finds. --rerun-moco solves Moco again in this run, so the
wall times compare on the same machine load (recorded `solve_seconds` otherwise); the CasADi
row also gives its process CPU seconds, the fairer number on a shared machine. --truth RAW
(a synthetic cohort's raw folder) also compares each engine with the generator's truth of the
trial (`<RAW>/<subject>/_truth/<trial>.sto` and `<trial>_kinetics.sto`, walks only), on the
truth's frames: how far apart the engines are, beside how far each is from what made the
markers.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENSIM_MOCO_PARALLEL": "0"}
DEFAULT_GLOB = "/work/devdata/artifacts/TrackMoco/*/squat_short_01/[!_]*/window_0"


def rms(a, b) -> float:
    d = np.asarray(a, float) - np.asarray(b, float)
    return float(np.sqrt(np.nanmean(d * d)))


def compare(grid_dir: Path, other_dir: Path, body_weight: float) -> dict:
    """Agreement of two solved windows (folders with `kinematics.sto` and `kinetics.sto`: Moco's
    or the truth's, and the CasADi engine's) on the first one's grid, the other interpolated."""
    from pipeline.opensim_files import read_sto

    mk, mt = read_sto(grid_dir / "kinematics.sto"), read_sto(grid_dir / "kinetics.sto")
    ck, ct = read_sto(other_dir / "kinematics.sto"), read_sto(other_dir / "kinetics.sto")
    t = mk.index.to_numpy()
    t = t[(t >= ck.index[0] - 1e-9) & (t <= ck.index[-1] + 1e-9)]

    def at(df, col):
        """df[col] on the first window's grid t (its own table: its values there)."""
        return np.interp(t, df.index.to_numpy(), df[col].to_numpy())

    coords = [c for c in mk.columns if not c.endswith(("_speed", "_accel"))
              and not c.startswith("pelvis_t") and c in ck.columns]
    q = {c: np.degrees(rms(at(ck, c), at(mk, c))) for c in coords}
    torques = [c for c in mt.columns if c.endswith("_moment") and not c.startswith("pelvis")
               and c in ct.columns]
    tau = {c: rms(at(ct, c), at(mt, c)) for c in torques}
    grf = {s: 100.0 * rms(at(ct, f"ground_force_{s}_vy"), at(mt, f"ground_force_{s}_vy"))
           / body_weight for s in ("r", "l")}
    worst_q, worst_tau = max(q, key=q.get), max(tau, key=tau.get)
    return {"coordinate_rms_deg": q[worst_q], "worst_coordinate": worst_q,
            "coordinate_rms_deg_mean": float(np.mean(list(q.values()))),
            "torque_rms_nm": tau[worst_tau], "worst_torque": worst_tau,
            "torque_rms_nm_mean": float(np.mean(list(tau.values()))),
            "vertical_grf_rms_pct_bw": max(grf.values()), "points": int(len(t))}


AGREEMENT_KEYS = ("coordinate_rms_deg", "torque_rms_nm", "worst_torque",
                  "vertical_grf_rms_pct_bw")


def truth_folder(raw: Path, name: str, here: Path) -> Path | None:
    """A folder that `compare` reads as a solution: the generator's truth of trial `name`
    ("S01/walk_short_01"), or None where the cohort wrote no truth kinetics for it."""
    subject, trial = name.split("/")
    truth = raw / subject / "_truth"
    if not (truth / f"{trial}_kinetics.sto").exists():
        return None
    folder = here / "truth"
    folder.mkdir(exist_ok=True)
    for source, as_name in ((f"{trial}.sto", "kinematics.sto"),
                            (f"{trial}_kinetics.sto", "kinetics.sto")):
        (folder / as_name).unlink(missing_ok=True)
        (folder / as_name).symlink_to((truth / source).resolve())
    return folder


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: both engines solve in
    subprocesses, so this compares them fairly on a loaded machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_casadi(spec: dict, tree: Path, workdir: Path,
               guess: Path | None = None) -> tuple[dict, float, int]:
    spec = {**spec, "tree": str(tree), "workdir": str(workdir), "engine": "casadi"}
    if guess is not None:
        spec["guess"] = str(guess)
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    started = time.perf_counter()
    with open(workdir / "solve.log", "w") as log:
        code = subprocess.call([sys.executable, "-m", "collocation", str(spec_path)], cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **ONE_THREAD})
    wall = time.perf_counter() - started
    result = json.loads((workdir / "result.json").read_text()) if code in (0, 3) else {}
    return result, wall, code


def run_moco(spec: dict, workdir: Path) -> tuple[dict, float]:
    from osim.moco_track import WindowSpec
    from osim.solve_process import run_window

    started = time.perf_counter()
    result = run_window(WindowSpec(**{**spec, "workdir": str(workdir)}), timeout_s=3600)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("windows", nargs="*", help="TrackMoco window folders")
    parser.add_argument("--rerun-moco", action="store_true", help="solve Moco again here")
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--scratch", help="keep the solves here (default: a temp folder)")
    parser.add_argument("--warm", action="store_true",
                        help="also start the CasADi engine from Moco's solution (same NLP?)")
    parser.add_argument("--truth", help="synthetic cohort's raw folder: compare both engines "
                        "with the generator's truth too")
    args = parser.parse_args()

    from osim.export_tree import write_tree

    windows = [Path(w) for w in (args.windows or sorted(glob.glob(DEFAULT_GLOB)))]
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="bench_engines_"))
    rows = []
    for window in windows:
        spec = json.loads((window / "spec.json").read_text())
        name = "/".join(window.parts[-4:-2])
        here = scratch / name.replace("/", "_")
        here.mkdir(parents=True, exist_ok=True)
        tree = write_tree(spec["model"], here / "tree.json")
        moco_cpu = None
        if args.rerun_moco:
            cpu = children_cpu()
            moco_result, moco_wall = run_moco(spec, here / "moco")
            moco_cpu = children_cpu() - cpu
            moco_dir = here / "moco"
        else:
            moco_dir = window
            moco_result = json.loads((window / "result.json").read_text())
            moco_wall = moco_result["solve_seconds"]
        cpu = children_cpu()
        casadi_result, casadi_wall, code = run_casadi(spec, tree, here / "casadi")
        casadi_cpu = children_cpu() - cpu
        row = {"window": name, "moco_seconds": moco_wall, "moco_cpu_seconds": moco_cpu,
               "moco_iterations": moco_result.get("iterations"),
               "moco_objective": moco_result.get("objective"),
               "casadi_seconds": casadi_wall, "casadi_exit": code,
               "casadi_cpu_seconds": casadi_cpu,
               "casadi_iterations": casadi_result.get("iterations"),
               "casadi_objective": casadi_result.get("objective"),
               "casadi_status": casadi_result.get("status"),
               "speedup": moco_wall / casadi_wall}
        weight = 9.80665 * sum(b["mass"] for b in json.loads(tree.read_text())["bodies"])
        if code == 0 and moco_result.get("success"):
            row.update(compare(moco_dir, here / "casadi", weight))
        if args.warm and moco_result.get("success"):
            warm, _, warm_code = run_casadi(spec, tree, here / "casadi_warm", guess=moco_dir)
            row.update({"warm_iterations": warm.get("iterations"),
                        "warm_objective": warm.get("objective"), "warm_exit": warm_code})
            if warm_code == 0:
                agreement = compare(moco_dir, here / "casadi_warm", weight)
                row.update({f"warm_{k}": agreement[k] for k in AGREEMENT_KEYS})
        truth = truth_folder(Path(args.truth), name, here) if args.truth else None
        if truth is not None:
            solved = {"moco": moco_dir if moco_result.get("success") else None,
                      "casadi": here / "casadi" if code == 0 else None}
            for engine, folder in solved.items():
                if folder is not None:
                    errors = compare(truth, folder, weight)
                    row.update({f"{engine}_truth_{k}": errors[k] for k in AGREEMENT_KEYS})
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{'window':28s} {'moco s':>8s} {'it':>4s} {'casadi s':>9s} {'it':>4s} {'x':>5s} "
          f"{'q deg':>6s} {'tau Nm':>7s} {'GRF %BW':>8s}")
    for r in rows:
        print(f"{r['window']:28s} {r['moco_seconds']:8.1f} {r['moco_iterations'] or 0:4d} "
              f"{r['casadi_seconds']:9.1f} {r['casadi_iterations'] or 0:4d} {r['speedup']:5.1f} "
              f"{r.get('coordinate_rms_deg', float('nan')):6.2f} "
              f"{r.get('torque_rms_nm', float('nan')):7.2f} "
              f"{r.get('vertical_grf_rms_pct_bw', float('nan')):8.2f}")
    if args.warm:
        print(f"\n{'started from Moco':28s} {'it':>4s} {'objective':>10s} {'q deg':>6s} "
              f"{'tau Nm':>7s} {'GRF %BW':>8s}")
        for r in rows:
            print(f"{r['window']:28s} {r.get('warm_iterations') or 0:4d} "
                  f"{r.get('warm_objective') or float('nan'):10.5f} "
                  f"{r.get('warm_coordinate_rms_deg', float('nan')):6.2f} "
                  f"{r.get('warm_torque_rms_nm', float('nan')):7.2f} "
                  f"{r.get('warm_vertical_grf_rms_pct_bw', float('nan')):8.2f}")
    if args.truth:
        print(f"\n{'against the truth':28s} {'engine':>6s} {'q deg':>6s} {'tau Nm':>7s} "
              f"{'GRF %BW':>8s}")
        for r in rows:
            for engine in ("moco", "casadi"):
                if f"{engine}_truth_torque_rms_nm" in r:
                    print(f"{r['window']:28s} {engine:>6s} "
                          f"{r[f'{engine}_truth_coordinate_rms_deg']:6.2f} "
                          f"{r[f'{engine}_truth_torque_rms_nm']:7.2f} "
                          f"{r[f'{engine}_truth_vertical_grf_rms_pct_bw']:8.2f}")
    print(f"\nsolves kept in {scratch}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
