"""One trial's ground truth: Moco windows solved in subprocesses, stitched, checked by the gates.

Outputs in `workdir`: `kinematics.parquet` and `kinetics.parquet` on the IK frame times (OpenSim
column names), and each window's scratch folder (`window_<i>/`, with `problem.omoco`,
`solution.sto` and the solver log).
"""
from __future__ import annotations

import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
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


STANCE_N = 20.0  # a foot is in stance where its plate measures more than this (N)


def grf_errors(kinetics: pd.DataFrame, measured: pd.DataFrame, weight: float) -> dict:
    """GRF error against the force plates over the stance phases, in body weights: RMSE of the
    vertical (vy), anteroposterior (vx) and mediolateral (vz) force, both feet pooled, over the
    samples where the plate under that foot measures more than STANCE_N."""
    times = kinetics.index.to_numpy()
    errors: dict[str, list] = {"x": [], "y": [], "z": []}
    for side in ("r", "l"):
        vertical = np.interp(times, measured.index.to_numpy(),
                             measured[f"ground_force_{side}_vy"].to_numpy())
        stance = vertical > STANCE_N
        for axis in errors:
            column = f"ground_force_{side}_v{axis}"
            reference = np.interp(times, measured.index.to_numpy(), measured[column].to_numpy())
            errors[axis].append((kinetics[column].to_numpy() - reference)[stance])
    out = {}
    for axis, name in (("y", "vertical"), ("x", "ap"), ("z", "ml")):
        pooled = np.concatenate(errors[axis])
        out[f"grf_{name}_rmse_bw"] = (float(np.sqrt(np.mean(pooled ** 2)) / weight)
                                      if len(pooled) else float("nan"))
    return out


def _grf_errors(kinetics: pd.DataFrame, grf_leaf: Path, weight: float) -> dict:
    from warehouse.store import read_leaf

    measured, _ = read_leaf(grf_leaf)
    return grf_errors(kinetics, measured, weight)


#: Friction transition velocity (m/s) of the CasADi engine's continuation rung. Measured before
#: the engine rounded the kink of the friction ramp (TrackSettings.friction_kink), when
#: two synthetic walks cycled at the model's 0.2 m/s: at 0.5 m/s all four walks of the default
#: cohort converged, and from there S01 at 0.2 m/s. Since the rounding no measured window has
#: needed this rung; it stays as the fallback for a window that does not converge.
SMOOTHED_FRICTION = 0.5


def solve_with_retries(spec: WindowSpec, settings: TrackSettings,
                       overlap_s: float = 0.2) -> list[dict]:
    """One window through the retry ladder; returns every attempt (status, iterations, seconds,
    which rung, its folder). The attempts marked `final` are the solution: the first that
    converged, or the two halves of the last rung. A solve that fails every rung is reported,
    never used.

    Rungs: as configured; then, for Moco, 4x the iterations (IPOPT was still making progress),
    for the CasADi engine, where more iterations only repeat a cycle, a friction continuation
    (`smoothed_friction`: solved with the spheres' transition velocity at SMOOTHED_FRICTION,
    then as configured from that solution); convergence and constraint tolerances relaxed 10x
    (still gated by the quality checks afterwards); the window split in two halves that
    overlap by `overlap_s` (shorter windows converge more easily, see DESIGN.md), each solved
    with the relaxed settings.
    """
    def attempt(name: str, rung: WindowSpec, final: bool = True, **engine_options) -> dict:
        result = run_window(rung, rung.settings["timeout_s"], engine_options)
        return {"attempt": name, "final": final, "workdir": rung.workdir,
                **{k: result.get(k) for k in ("status", "iterations", "objective",
                                              "solve_seconds", "t0", "t1", "success",
                                              "detail")}}

    def rung(name: str, **changes) -> WindowSpec:
        return replace(spec, workdir=str(Path(spec.workdir) / name) if name else spec.workdir,
                       settings={**spec.settings, **changes})

    def smoothed_friction() -> list[dict]:
        smooth = rung("smoothed_friction/smooth")
        first = attempt("smoothed_friction (smooth)", smooth, final=False,
                        friction_transition_velocity=SMOOTHED_FRICTION)
        if not first["success"]:
            return [first]
        return [first, attempt("smoothed_friction", rung("smoothed_friction"),
                               guess=smooth.workdir)]

    def plain(name: str, **changes):
        return lambda: [attempt(name, rung(name, **changes))]

    attempts = [attempt("as configured", spec)]
    more = {"max_iterations": 4 * settings.max_iterations}
    relaxed = {**more, "convergence_tolerance": 10 * settings.convergence_tolerance,
               "constraint_tolerance": 10 * settings.constraint_tolerance}
    second = smoothed_friction if settings.engine == "casadi" else plain("more_iterations", **more)
    for fallback in (second, plain("relaxed_tolerance", **relaxed)):
        if attempts[-1]["success"] or attempts[-1]["status"] == "timeout":
            break  # a timeout would only time out again with more iterations
        attempts[-1]["final"] = False
        attempts.extend(fallback())
    if attempts[-1]["success"]:
        return attempts
    attempts[-1]["final"] = False
    middle = 0.5 * (spec.t0 + spec.t1)
    for i, (t0, t1) in enumerate(((spec.t0, middle + 0.5 * overlap_s),
                                  (middle - 0.5 * overlap_s, spec.t1))):
        half = replace(rung(f"half_{i}", **relaxed), t0=t0, t1=t1)
        attempts.append(attempt(f"half_{i}", half))
    return attempts


def track_trial(*, model: Path, ik: Path, grf_leaf: Path | None, settings: TrackSettings,
                mass_kg: float, height_m: float, workdir: Path, max_window_s: float = 2.0,
                overlap_s: float = 0.2, trial: str = "", gates: Gates | None = None,
                progress=None, window_workers: int = 1) -> dict:
    """Solve, stitch and gate one trial; raises SolveError or QualityError, else returns the
    summary (windows, quality numbers, versions, engine)."""
    gates = gates or Gates()
    # Each solver process runs inside its window's folder: hand it absolute paths.
    model, ik, workdir = Path(model).resolve(), Path(ik).resolve(), Path(workdir).resolve()
    coordinates = read_sto(ik)
    times = coordinates.index.to_numpy()
    windows = plan_windows(float(times[0]), float(times[-1]), max_window_s, overlap_s)
    grf_mot = _grf_mot(grf_leaf, workdir / "grf_measured.mot") if grf_leaf else None
    specs = [WindowSpec(model=str(model), coordinates=str(ik), t0=t0, t1=t1,
                        workdir=str(workdir / f"window_{i}"), settings=asdict(settings),
                        grf=str(grf_mot) if grf_mot else None)
             for i, (t0, t1) in enumerate(windows)]
    done = 0

    def solve(spec: WindowSpec) -> list[dict]:
        nonlocal done
        attempts = solve_with_retries(spec, settings, overlap_s)
        done += 1
        if progress:
            progress(done, len(specs), f"window {spec.t0:.2f}-{spec.t1:.2f} s: "
                     f"{attempts[-1]['status']} after {len(attempts)} attempt(s)")
        return attempts

    if progress:
        progress(0, len(specs), f"{len(specs)} window(s), {window_workers} at a time")
    # Each window is its own process: a lab with idle cores and one long trial solves its
    # windows side by side (`window_workers`); a batch of trials uses Luigi's workers instead.
    with ThreadPoolExecutor(max_workers=max(1, window_workers)) as pool:
        solved = list(pool.map(solve, specs))
    results = [{"window": i, **attempt} for i, attempts in enumerate(solved)
               for attempt in attempts]
    pieces = {"kinematics": [], "kinetics": []}
    for spec, attempts in zip(specs, solved, strict=True):
        final = [a for a in attempts if a["final"]]
        failed = [a for a in final if not a["success"]]
        if failed:
            # The rung that failed, not merely the last one run (of two halves, one may solve).
            why = "; ".join(f"{a['attempt']}: {a['status']} {a.get('detail') or ''}".strip()
                            for a in failed)
            engine = "CasADi" if settings.engine == "casadi" else "Moco"
            raise SolveError(f"{engine} window {spec.t0:.2f}-{spec.t1:.2f} s did not solve after "
                             f"{len(attempts)} attempts ({', '.join(a['attempt'] for a in attempts)}"
                             f"): {why}",
                             file=spec.workdir, trial=trial, hint="see solve.log in each "
                             "attempt's folder; check the IK (tracking a bad reference rarely "
                             "converges), then try a finer mesh or a longer timeout")
        for attempt in final:
            for table in pieces:
                pieces[table].append(read_sto(Path(attempt["workdir"]) / f"{table}.sto"))
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
               "engine": settings.engine, "settings": asdict(settings), "gates": asdict(gates)}
    reasons = failed_gates(quality, gates)
    if reasons:
        raise QualityError("; ".join(reasons), file=str(workdir), trial=trial,
                           hint="inspect the IK and the solution; a trial failing the gates is"
                           " not written as ground truth")
    return summary
