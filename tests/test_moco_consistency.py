"""Moco's ground truth is dynamically consistent: OpenSim's InverseDynamicsSolver, given
Moco's states and accelerations and Moco's ground reaction forces as external loads (the contact
spheres switched off), reproduces Moco's joint torques and residuals.

Why the solver and not the InverseDynamicsTool: the tool differentiates the coordinates by
splines through Moco's mesh points (12.5 ms apart here), which alone leaves 14-53 N*m RMS on
this window, while the solver on the exact accelerations agreed to 0.02 N*m.

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


def _inverse_dynamics(model, kinematics, grf_mot: Path, loads_xml: Path) -> dict:
    """OpenSim's InverseDynamicsSolver on each row of `kinematics` (q, _speed, _accel) with the
    GRF table applied to the calcanei; the model's own contact spheres and actuators are off."""
    from osim.export_tree import export_tree, simbody_vectors
    from osim.moco_track import contact_force_paths

    model.addModelComponent(opensim.ExternalLoads(
        str(write_external_loads(grf_mot, loads_xml)), True))
    model.finalizeConnections()
    for paths in contact_force_paths(model).values():
        for path in paths:
            opensim.Force.safeDownCast(model.getComponent(path)).set_appliesForce(False)
    for actuator in model.getActuators():
        actuator.set_appliesForce(False)
    state = model.initSystem()
    coordinates = export_tree(model)["coordinates"]
    solver = opensim.InverseDynamicsSolver(model)
    rows = []
    names = [c["name"] for c in coordinates]
    for t, row in kinematics.iterrows():
        state.setTime(float(t))
        # Simbody's mobility order differs from the coordinate set's: simbody_vectors maps it.
        q, u, udot = simbody_vectors(coordinates, row[names],
                                     row[[f"{n}_speed" for n in names]],
                                     row[[f"{n}_accel" for n in names]])
        state.setQ(q)
        state.setU(u)
        model.realizeVelocity(state)
        tau = solver.solve(state, udot)
        rows.append([tau.get(c["mobility_index"]) for c in coordinates])
    values = np.array(rows)
    return {c["name"] + ("_force" if c["motion_type"] == "translational" else "_moment"):
            values[:, i] for i, c in enumerate(coordinates)}


@pytest.fixture(scope="module")
def squat_window(tmp_path_factory):
    """One solved window: the descent of a squat, where the knees and hips load up."""
    from osim.builtin_model import build_model, write_model
    from osim.moco_track import _processor
    from osim.synthetic_markers import plant_feet
    from pipeline.motions import squat

    tmp_path = tmp_path_factory.mktemp("squat_window")
    model = build_model(1.70, 65.0, "M")
    model_path = write_model(model, tmp_path / "model.osim")
    coordinates = plant_feet(model, squat(duration_s=2.6))
    write_sto(tmp_path / "truth.sto", coordinates)
    settings = replace(PRESETS["squat"], weld_joints=WELD)
    spec = WindowSpec(model=str(model_path), coordinates=str(tmp_path / "truth.sto"), t0=0.5,
                      t1=0.9, workdir=str(tmp_path / "w"), settings=asdict(settings))
    result = run_window(spec, timeout_s=900)
    assert result["success"], result
    welded = _processor(spec, settings).process()
    welded.printToXML(str(tmp_path / "welded.osim"))
    return {"dir": tmp_path, "welded": tmp_path / "welded.osim",
            "kinematics": read_sto(tmp_path / "w" / "kinematics.sto"),
            "kinetics": read_sto(tmp_path / "w" / "kinetics.sto")}


@pytest.mark.slow
def test_inverse_dynamics_of_moco_reproduces_moco_torques(squat_window, tmp_path):
    kinematics, kinetics = squat_window["kinematics"], squat_window["kinetics"]
    grf_columns = [c for c in kinetics.columns if c.startswith("ground_")]
    write_mot(tmp_path / "moco_grf.mot", kinetics[grf_columns].fillna(0.0))
    welded = opensim.Model(str(squat_window["welded"]))
    inverse = _inverse_dynamics(welded, kinematics, tmp_path / "moco_grf.mot",
                                tmp_path / "loads.xml")
    assert len(inverse) >= 20
    for column, values in inverse.items():
        rms = np.sqrt(np.mean((values - kinetics[column].to_numpy()) ** 2))
        assert rms < 0.1, f"{column}: ID vs Moco RMS {rms:.3f}"
    knee = np.abs(kinetics["knee_angle_r_moment"]).max()
    assert knee > 20, "the squat should load the knee"


@pytest.mark.slow
def test_inverse_dynamics_tool_on_moco_kinematics_and_grf(squat_window, tmp_path):
    """The issue's check with OpenSim's InverseDynamicsTool itself: Moco's kinematics (written as
    the C2 curve through its q, q-dot and q-ddot, see osim/id_tool.py) and Moco's GRFs in,
    contact spheres and actuators excluded; every joint torque and residual within 5 N*m (N)
    RMS of Moco's."""
    from osim.id_tool import compare_with_tool

    rms = compare_with_tool(squat_window["kinematics"], squat_window["kinetics"],
                            squat_window["welded"], tmp_path)
    assert len(rms) >= 20, sorted(rms)
    worst = max(rms, key=rms.get)
    assert rms[worst] < 5.0, f"{worst}: InverseDynamicsTool vs Moco RMS {rms[worst]:.2f}"
    assert rms["knee_angle_r_moment"] < 5.0
