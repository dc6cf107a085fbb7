"""Moco's ground truth is dynamically consistent: OpenSim's own InverseDynamicsTool, run on
Moco's kinematics with Moco's ground reaction forces, reproduces Moco's joint torques.

Small but real: the built-in model squatting (a planted-feet synthetic motion, tracked directly),
arms and toes welded, a 0.4 s window at the default 0.025 s mesh."""
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from osim.moco_track import PRESETS, WindowSpec, write_external_loads
from osim.solve_process import run_window
from pipeline.opensim_files import read_sto, write_mot, write_sto

opensim = pytest.importorskip("opensim")

WELD = ("mtp_r", "mtp_l", "acromial_r", "acromial_l", "elbow_r", "elbow_l", "radioulnar_r",
        "radioulnar_l", "radius_hand_r", "radius_hand_l")


def _inverse_dynamics_tool(model_path: Path, kinematics: Path, grf: Path, out: Path) -> Path:
    loads_path = write_external_loads(grf, out.parent / "external_loads.xml")
    tool = opensim.InverseDynamicsTool()
    tool.setModelFileName(str(model_path))
    tool.setCoordinatesFileName(str(kinematics))
    tool.setExternalLoadsFileName(str(loads_path))
    tool.setLowpassCutoffFrequency(-1)   # Moco's states are smooth already: compare like for like
    tool.setResultsDir(str(out.parent))
    tool.setOutputGenForceFileName(out.name)
    times = read_sto(kinematics).index
    tool.setStartTime(float(times[0]))
    tool.setEndTime(float(times[-1]))
    assert tool.run()
    return out


@pytest.mark.slow
def test_inverse_dynamics_of_moco_reproduces_moco_torques(tmp_path):
    from osim.builtin_model import build_model, write_model
    from osim.moco_track import _processor
    from osim.synthetic_markers import plant_feet
    from pipeline.motions import squat

    model = build_model(1.70, 65.0, "M")
    model_path = write_model(model, tmp_path / "model.osim")
    coordinates = plant_feet(model, squat(duration_s=2.6))
    write_sto(tmp_path / "truth.sto", coordinates)
    # The descent of the squat, where the knees and hips load up.
    settings = replace(PRESETS["squat"], weld_joints=WELD)
    spec = WindowSpec(model=str(model_path), coordinates=str(tmp_path / "truth.sto"), t0=0.5,
                      t1=0.9, workdir=str(tmp_path / "w"), settings=asdict(settings))
    result = run_window(spec, timeout_s=900)
    assert result["success"], result

    kinematics = read_sto(tmp_path / "w" / "kinematics.sto")
    kinetics = read_sto(tmp_path / "w" / "kinetics.sto")
    coords = [c for c in kinematics.columns if not c.endswith(("_speed", "_accel"))]
    write_mot(tmp_path / "moco_q.mot", kinematics[coords], in_degrees=False)
    grf_columns = [c for c in kinetics.columns if c.startswith("ground_")]
    write_mot(tmp_path / "moco_grf.mot", kinetics[grf_columns].fillna(0.0))
    welded = _processor(spec, settings).process()
    welded.printToXML(str(tmp_path / "welded.osim"))
    out = _inverse_dynamics_tool(tmp_path / "welded.osim", tmp_path / "moco_q.mot",
                                 tmp_path / "moco_grf.mot", tmp_path / "id" / "id.sto")
    inverse = read_sto(out)
    # ID's spline derivatives are least reliable at the window ends: compare the interior.
    interior = slice(2, -2)
    checked = 0
    for column in inverse.columns:
        if column not in kinetics:
            continue
        moco = np.interp(inverse.index, kinetics.index, kinetics[column])
        rms = np.sqrt(np.mean((inverse[column].to_numpy() - moco)[interior] ** 2))
        assert rms < 5.0, f"{column}: ID vs Moco RMS {rms:.2f}"
        checked += 1
    assert checked >= 20
    knee = np.abs(kinetics["knee_angle_r_moment"]).max()
    assert knee > 20, "the squat should load the knee"
