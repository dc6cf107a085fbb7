"""One trial's ground truth: Moco windows solved in subprocesses, stitched, checked by the gates.

Outputs in `workdir`: `kinematics.parquet` and `kinetics.parquet` on the IK frame times (OpenSim
column names), and each window's scratch folder (`window_<i>/`, with `problem.omoco`,
`solution.sto` and the solver log).
"""
from __future__ import annotations

import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import QualityError, SolveError
from pipeline.opensim_files import read_sto, write_mot
from pipeline.quality import Gates, failed_gates, measure
from pipeline.signal import lowpass
from pipeline.windows import plan_windows, stitch

from .moco_track import TrackSettings, WindowSpec
from .solve_process import run_window

GRAVITY = 9.80665


def versions() -> dict:
    return {"python": platform.python_version(),
            **{name: version(name) for name in ("opensim", "numpy", "pandas", "pyarrow")}}


def _grf_mot(grf_leaf: Path, path: Path) -> Path:
    """The measured GRF as a .mot for MocoContactTrackingGoal. OpenSim's readers turn NaN into 0
    and drop the rows after it, so the undefined CoP of an unloaded foot is written as 0."""
    from warehouse.store import read_leaf

    grf, _ = read_leaf(grf_leaf)
    write_mot(path, grf.fillna(0.0), name="grf")
    return path


def _grf_errors(kinetics: pd.DataFrame, grf_leaf: Path, weight: float) -> dict:
    from warehouse.store import read_leaf

    measured, _ = read_leaf(grf_leaf)
    times = kinetics.index.to_numpy()
    out = {}
    for side in ("r", "l"):
        errors = []
        for axis in "xyz":
            column = f"ground_force_{side}_v{axis}"
            reference = np.interp(times, measured.index.to_numpy(), measured[column].to_numpy())
            errors.append(kinetics[column].to_numpy() - reference)
        errors = np.array(errors)
        out[f"grf_vy_rmse_bw_{side}"] = float(np.sqrt(np.mean(errors[1] ** 2)) / weight)
        out[f"grf_rmse_bw_{side}"] = float(np.sqrt(np.mean(np.sum(errors ** 2, axis=0))) / weight)
    return out


def track_trial(*, model: Path, ik: Path, grf_leaf: Path | None, settings: TrackSettings,
                mass_kg: float, height_m: float, workdir: Path, max_window_s: float = 2.0,
                overlap_s: float = 0.2, trial: str = "", gates: Gates | None = None,
                progress=None, window_workers: int = 1) -> dict:
    """Solve, stitch and gate one trial; raises SolveError or QualityError, else returns the
    summary (windows, quality numbers, versions, engine)."""
    gates = gates or Gates()
    coordinates = read_sto(ik)
    times = coordinates.index.to_numpy()
    windows = plan_windows(float(times[0]), float(times[-1]), max_window_s, overlap_s)
    grf_mot = _grf_mot(grf_leaf, workdir / "grf_measured.mot") if grf_leaf else None
    specs = [WindowSpec(model=str(model), coordinates=str(ik), t0=t0, t1=t1,
                        workdir=str(workdir / f"window_{i}"), settings=asdict(settings),
                        grf=str(grf_mot) if grf_mot else None)
             for i, (t0, t1) in enumerate(windows)]
    done = 0

    def solve(spec: WindowSpec) -> dict:
        nonlocal done
        result = run_window(spec, settings.timeout_s)
        done += 1
        if progress:
            progress(done, len(specs), f"window {spec.t0:.2f}-{spec.t1:.2f} s: {result['status']}")
        return result

    if progress:
        progress(0, len(specs), f"{len(specs)} window(s), {window_workers} at a time")
    # Each window is its own process: a lab with idle cores and one long trial solves its
    # windows side by side (`window_workers`); a batch of trials uses Luigi's workers instead.
    with ThreadPoolExecutor(max_workers=max(1, window_workers)) as pool:
        solved = list(pool.map(solve, specs))
    pieces = {"kinematics": [], "kinetics": []}
    results = [{k: r.get(k) for k in ("status", "iterations", "objective", "solve_seconds",
                                      "t0", "t1", "success")} for r in solved]
    for spec, result in zip(specs, solved, strict=True):
        if not result["success"]:
            raise SolveError(f"Moco window {spec.t0:.2f}-{spec.t1:.2f} s did not solve: "
                             f"{result['status']} {result.get('detail', '')}".strip(),
                             file=spec.workdir, trial=trial, hint="see solve.log there; try a "
                             "finer mesh, a longer timeout or shorter windows")
        for table in pieces:
            pieces[table].append(read_sto(Path(spec.workdir) / f"{table}.sto"))
    if progress:
        progress(len(windows), len(windows), "stitching")
    # Windows end on Moco's grid, up to one mesh interval short of the trial: the ground truth
    # covers the frames the solutions reach.
    covered = times[(times >= pieces["kinematics"][0].index[0] - 1e-9)
                    & (times <= pieces["kinematics"][-1].index[-1] + 1e-9)]
    kinematics = stitch(pieces["kinematics"], covered)
    kinetics = stitch(pieces["kinetics"], covered)
    kinematics.to_parquet(workdir / "kinematics.parquet")
    kinetics.to_parquet(workdir / "kinetics.parquet")

    rate = 1.0 / np.median(np.diff(times))
    reference = pd.DataFrame(lowpass(coordinates.to_numpy(), rate, settings.filter_hz),
                             index=coordinates.index, columns=coordinates.columns)
    reference = reference.loc[kinematics.index]
    tracked = kinematics[[c for c in reference.columns if c in kinematics]]
    quality = measure(kinetics, tracked, reference[tracked.columns], mass_kg, height_m)
    if grf_leaf:
        quality.update(_grf_errors(kinetics, grf_leaf, mass_kg * GRAVITY))
    summary = {"windows": results, "quality": quality, "versions": versions(),
               "engine": "moco", "settings": asdict(settings), "gates": asdict(gates)}
    reasons = failed_gates(quality, gates)
    if reasons:
        raise QualityError("; ".join(reasons), file=str(workdir), trial=trial,
                           hint="inspect the IK and the solution; a trial failing the gates is"
                           " not written as ground truth")
    return summary
