"""Seconds per ground-truth stage for one synthetic walking trial on the built-in model, and Moco
seconds against the number of mesh intervals.

    .venv/bin/python bench/bench_ground_truth.py [--window 1.0] [--meshes 0.05 0.025]

Stages: scale (ScaleTool on the static trial), IK (the walking trial), Moco (one window of
`--window` seconds per mesh interval, one thread, arms and toes welded as in luigi.cfg). The ratio
column compares each Moco solve with the coarsest mesh of the same run (this machine is shared and
noisy: compare ratios, not seconds, across runs). Quality numbers come from pipeline.quality.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

WELD = ("mtp_r", "mtp_l", "acromial_r", "acromial_l", "elbow_r", "elbow_l", "radioulnar_r",
        "radioulnar_l", "radius_hand_r", "radius_hand_l")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=1.0, help="Moco window, s")
    parser.add_argument("--meshes", type=float, nargs="+", default=[0.05, 0.025])
    parser.add_argument("--trial", default="walk_short_01")
    args = parser.parse_args()

    import opensim

    from osim.ik import inverse_kinematics
    from osim.moco_track import PRESETS, WindowSpec
    from osim.prepare import prepare_for_tracking
    from osim.scale import scale_model
    from osim.solve_process import run_window
    from pipeline.cohort import sample_subjects, write_subject
    from pipeline.ingest import load_trial
    from pipeline.opensim_files import read_sto, write_sto
    from pipeline.quality import measure
    from pipeline.signal import lowpass

    work = Path(tempfile.mkdtemp(prefix="bench_gt_"))
    subject = sample_subjects(1, seed=0)[0]
    write_subject(work / "raw", subject, activities=[args.trial])
    folder = work / "raw" / subject["id"]
    rows = []

    from osim.builtin_model import build_model
    started = time.perf_counter()
    static = load_trial(folder / "static.c3d", subject=subject["id"])
    generic = build_model(subject["height_m"], subject["mass_kg"], subject["sex"])
    scaled, _ = scale_model(generic, static.markers, subject["mass_kg"], workdir=work / "scale")
    scaled.printToXML(str(work / "model.osim"))
    tracking = prepare_for_tracking(opensim.Model(str(work / "model.osim")), subject["height_m"])
    tracking.printToXML(str(work / "tracking.osim"))
    rows.append({"stage": "scale", "seconds": time.perf_counter() - started})

    started = time.perf_counter()
    trial = load_trial(folder / f"{args.trial}.c3d", subject=subject["id"])
    ik = inverse_kinematics(opensim.Model(str(work / "model.osim")), trial)
    write_sto(work / "ik.sto", ik.coordinates)
    rows.append({"stage": "ik", "seconds": time.perf_counter() - started,
                 "frames": len(ik.coordinates)})

    coords = read_sto(work / "ik.sto")
    t0 = float(coords.index[0])
    t1 = min(t0 + args.window, float(coords.index[-1]))
    base = replace(PRESETS["walking"], weld_joints=WELD)
    reference = pd.DataFrame(lowpass(coords.to_numpy(), 100.0, base.filter_hz),
                             index=coords.index, columns=coords.columns)
    for mesh in sorted(args.meshes, reverse=True):
        settings = replace(base, mesh_interval=mesh)
        spec = WindowSpec(model=str(work / "tracking.osim"), coordinates=str(work / "ik.sto"),
                          t0=t0, t1=t1, workdir=str(work / f"moco_{mesh}"),
                          settings=asdict(settings))
        started = time.perf_counter()
        result = run_window(spec, timeout_s=3600)
        row = {"stage": "moco", "mesh_s": mesh, "intervals": round((t1 - t0) / mesh),
               "seconds": time.perf_counter() - started, "status": result["status"],
               "iterations": result["iterations"]}
        if result["success"]:
            kinetics = read_sto(Path(spec.workdir) / "kinetics.sto")
            kinematics = read_sto(Path(spec.workdir) / "kinematics.sto")
            cols = [c for c in reference.columns if c in kinematics]
            ref = pd.DataFrame({c: np.interp(kinematics.index, reference.index, reference[c])
                                for c in cols}, index=kinematics.index)
            row.update(measure(kinetics, kinematics[cols], ref, subject["mass_kg"],
                               subject["height_m"]))
        rows.append(row)
    table = pd.DataFrame(rows)
    moco = table["stage"] == "moco"
    table.loc[moco, "ratio_to_coarsest"] = table.loc[moco, "seconds"] / table.loc[moco].iloc[0][
        "seconds"]
    print(f"trial {args.trial}, window {t1 - t0:.2f} s, subject {json.dumps(subject)}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
