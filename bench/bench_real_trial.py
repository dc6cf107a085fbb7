"""The real trial of opensim-core's example3DWalking as a lab subject: our ground truth against
the force plates and against OpenSim's own inverse dynamics (`id_walk.sto`).

    # once: the lab subject (model already scaled, no static trial), then BuildDataset
    .venv/bin/python bench/bench_real_trial.py --setup /tmp/real
    LUIGI_CONFIG_PATH=/tmp/real/luigi.cfg .venv/bin/luigi --module tasks BuildDataset \\
        --local-scheduler --workers 2
    # then the comparison
    .venv/bin/python bench/bench_real_trial.py --report /tmp/real

`--setup DIR` writes `DIR/raw/walk3d/` (subject.json naming the shared model; the TRC and GRF
files linked, never copied into the project) and `DIR/luigi.cfg` (data roots under DIR, two
windows solved side by side, a 2-hour timeout per window, `--engine` (casadi) and the plates
tracked with weight `--plate-weight` (0.05)). `--report DIR` prints the GRF RMSE
against the plates over the stance phases (% body weight; vertical, anteroposterior,
mediolateral) and the joint-moment RMSE against id_walk.sto over the times both cover.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO.parent / "shared" / "data" / "opensim-core" / "example3DWalking"
SUBJECT, TRIAL = "walk3d", "walk"
# The model's total mass (AddBiomechanics' fit); height: head marker to heel, default pose.
MASS_KG, HEIGHT_M = 85.27, 1.77


def setup(root: Path, engine: str = "casadi", plate_weight: float = 0.05) -> None:
    folder = root / "raw" / SUBJECT
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in ((f"{TRIAL}.trc", "markers_walk.trc"), (f"{TRIAL}_grf.mot", "grf_walk.mot")):
        link = folder / name
        link.unlink(missing_ok=True)
        link.symlink_to(EXAMPLE / target)
    (folder / "subject.json").write_text(json.dumps({
        "mass_kg": MASS_KG, "height_m": HEIGHT_M, "sex": "M", "static_trial": None,
        "model": str(EXAMPLE / "subject_walk_scaled.osim")}, indent=2))
    config = (REPO / "luigi.cfg").read_text()
    for key in ("raw", "warehouse", "artifacts"):
        config = config.replace(f"{key} = data/{key}", f"{key} = {root / key}")
    # The settings of the reported run (docs/benchmarks.md): the CasADi engine, the plates
    # tracked at 0.05 (Moco's 1e-2 left 13.8% BW of vertical GRF error).
    config = config.replace("max_window_s = 2.0", "max_window_s = 2.0\ntimeout_s = 7200\n"
                            f"window_workers = 2\nengine = {engine}\n"
                            f"contact_tracking_weight = {plate_weight}")
    (root / "luigi.cfg").write_text(config)
    print(f"lab subject in {folder}; config {root / 'luigi.cfg'}")


def report(root: Path) -> None:
    from osim.ground_truth import grf_errors
    from pipeline.opensim_files import read_sto
    from warehouse import catalog, store

    warehouse = root / "warehouse"
    kinetics, provenance = store.read_leaf(store.leaf_path(warehouse, "kinetics", SUBJECT, TRIAL))
    measured = read_sto(EXAMPLE / "grf_walk.mot")
    weight = MASS_KG * 9.80665
    grf = grf_errors(kinetics, measured, weight)
    print(f"ground truth {kinetics.index[0]:.3f}-{kinetics.index[-1]:.3f} s, "
          f"{len(kinetics)} frames; windows: " + ", ".join(
              f"{w['t0']:.2f}-{w['t1']:.2f} s {w['status']} {w['iterations']} it "
              f"{w['solve_seconds'] / 60:.1f} min" for w in provenance["windows"]))
    for key, value in grf.items():
        print(f"{key:24s} {100 * value:6.2f} % BW")
    reference = read_sto(EXAMPLE / "id_walk.sto")
    times = kinetics.index[(kinetics.index >= reference.index[0])
                           & (kinetics.index <= reference.index[-1])]
    rows = []
    for column in reference.columns:
        if column not in kinetics or column.startswith("pelvis"):
            continue
        ours = kinetics.loc[times, column].to_numpy()
        theirs = np.interp(times, reference.index, reference[column])
        rows.append({"moment": column, "rmse_nm": float(np.sqrt(np.mean((ours - theirs) ** 2))),
                     "peak_ref_nm": float(np.max(np.abs(theirs)))})
    table = pd.DataFrame(rows).sort_values("rmse_nm")
    print(f"\njoint moments vs id_walk.sto over {times[0]:.2f}-{times[-1]:.2f} s:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"median {table['rmse_nm'].median():.1f} N*m, max {table['rmse_nm'].max():.1f} N*m")
    trials = catalog.read_catalog(warehouse, "trials")
    row = trials[(trials.subject == SUBJECT) & (trials.trial == TRIAL)].iloc[0]
    print("\nquality gates:", {k: row[k] for k in ("residual_force_rms_bw",
                                                   "residual_moment_rms_bwh",
                                                   "max_angle_rmse_deg", "mean_vgrf_bw")
                               if k in row})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--setup", type=Path)
    group.add_argument("--report", type=Path)
    parser.add_argument("--engine", choices=["moco", "casadi"], default="casadi")
    parser.add_argument("--plate-weight", type=float, default=0.05,
                        help="[TrackMoco] contact_tracking_weight (default 0.05)")
    args = parser.parse_args()
    setup(args.setup, args.engine, args.plate_weight) if args.setup else report(args.report)


if __name__ == "__main__":
    main()
