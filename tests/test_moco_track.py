"""Moco tracking for real, kept small: the built-in model standing still, a 0.3 s window, a
coarse mesh, the arms and toes welded. Quiet standing must be carried by the feet through the
contact spheres, not by the pelvis residuals, and the extracted GRFs must equal a sum over the
sphere forces."""
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
from conftest import check_standing_solution

from osim.moco_track import TrackSettings, WindowSpec
from osim.solve_process import run_window
from pipeline.opensim_files import read_sto, write_sto

opensim = pytest.importorskip("opensim")

MASS, HEIGHT = 70.0, 1.75
WELD = ("mtp_r", "mtp_l", "acromial_r", "acromial_l", "elbow_r", "elbow_l", "radioulnar_r",
        "radioulnar_l", "radius_hand_r", "radius_hand_l")


@pytest.fixture(scope="module")
def standing_solution(tmp_path_factory):
    from osim.builtin_model import build_model, write_model

    root = tmp_path_factory.mktemp("moco")
    model = build_model(HEIGHT, MASS, "F")
    model_path = write_model(model, root / "model.osim")
    state = model.initSystem()
    coords = {c.getName(): c.getValue(state) for c in model.getCoordinateSet()}
    times = np.linspace(0, 0.3, 31)
    table = pd.DataFrame({name: np.full(len(times), value) for name, value in coords.items()},
                         index=pd.Index(times, name="time"))
    write_sto(root / "ik.sto", table)
    settings = replace(TrackSettings(), mesh_interval=0.1, weld_joints=WELD, filter_hz=6.0)
    spec = WindowSpec(model=str(model_path), coordinates=str(root / "ik.sto"), t0=0.0, t1=0.3,
                      workdir=str(root / "window"), settings=asdict(settings))
    result = run_window(spec, timeout_s=600)
    return spec, result


@pytest.mark.slow
def test_standing_is_carried_by_the_feet(standing_solution):
    spec, result = standing_solution
    assert result["success"], result
    check_standing_solution(spec.workdir, MASS)


@pytest.mark.slow
def test_grf_equals_the_sum_over_contact_spheres(standing_solution):
    """Independent of createExternalLoadsTableForGait: each sphere's record is the force on its
    body and the torque about the body origin; move them to the ground origin and then to the CoP."""
    from osim.moco_track import _processor, contact_force_paths

    spec, result = standing_solution
    settings = TrackSettings(**{**spec.settings, "weld_joints": tuple(WELD)})
    model = _processor(spec, settings).process()
    model.initSystem()
    trajectory = opensim.MocoTrajectory(f"{spec.workdir}/solution.sto")
    states = trajectory.exportToStatesTrajectory(model)
    kinetics = read_sto(f"{spec.workdir}/kinetics.sto")
    for side, paths in contact_force_paths(model).items():
        for i in range(states.getSize()):
            state = states.get(i)
            model.realizeDynamics(state)
            force, moment = np.zeros(3), np.zeros(3)
            for path in paths:
                sphere_force = opensim.SmoothSphereHalfSpaceForce.safeDownCast(
                    model.getComponent(path))
                values = sphere_force.getRecordValues(state)
                f = np.array([values.get(k) for k in range(3)])
                origin = sphere_force.getConnectee("sphere").getFrame().findBaseFrame() \
                    .getPositionInGround(state).to_numpy()
                force += f
                moment += np.array([values.get(k) for k in range(3, 6)]) + np.cross(origin, f)
            cop = np.array([moment[2] / force[1], 0.0, -moment[0] / force[1]])
            free = moment - np.cross(cop, force)
            row = kinetics.iloc[i]
            np.testing.assert_allclose([row[f"ground_force_{side}_v{a}"] for a in "xyz"], force,
                                       atol=1e-6)
            np.testing.assert_allclose([row[f"ground_force_{side}_p{a}"] for a in "xyz"], cop,
                                       atol=1e-9)
            np.testing.assert_allclose([row[f"ground_torque_{side}_{a}"] for a in "xyz"], free,
                                       atol=1e-6)


def test_a_crashing_solve_is_a_recorded_failure(tmp_path):
    spec = WindowSpec(model="none.osim", coordinates="none.sto", t0=0, t1=1,
                      workdir=str(tmp_path / "w"))
    crashed = run_window(spec, timeout_s=120)
    assert crashed["success"] is False and crashed["status"] == "crashed"
    assert "exited with code" in crashed["detail"]


def test_a_hanging_solve_is_killed_at_its_timeout(standing_solution, tmp_path):
    spec, _ = standing_solution
    slow = replace(spec, workdir=str(tmp_path / "w"))
    result = run_window(slow, timeout_s=0.5)   # less than the process needs to import OpenSim
    assert result["success"] is False and result["status"] == "timeout"
    assert not (tmp_path / "w" / "result.json").exists()


def test_a_killed_worker_leaves_no_orphaned_solve(standing_solution, tmp_path):
    """SIGKILL the process that runs the window: its solver subprocess must die with it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec, _ = standing_solution
    script = (
        "import sys, json; from dataclasses import replace; "
        "from osim.moco_track import WindowSpec; from osim.solve_process import run_window; "
        f"spec = WindowSpec(**json.load(open({str(tmp_path / 'spec.json')!r}))); "
        "run_window(spec, 600)")
    (tmp_path / "spec.json").write_text(__import__("json").dumps(
        {**asdict(spec), "workdir": str(tmp_path / "w")}))
    worker = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    solver_pid = None
    while time.time() < deadline and solver_pid is None:
        out = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True)
        solver_pid = int(out.stdout.split()[0]) if out.stdout.strip() else None
        time.sleep(0.2)
    assert solver_pid, "the solver subprocess never started"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    for _ in range(50):
        try:
            os.kill(solver_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(solver_pid, signal.SIGKILL)
    raise AssertionError("the solver outlived its killed worker")
