"""`python -m collocation SPEC.json`: solve one window with the CasADi engine.

Writes into spec.workdir, like `python -m osim.moco_track`: `result.json` (success, status,
iterations, objective, solve_seconds, nlp_seconds, cpu_seconds, t0, t1, solved_t0, solved_t1,
mesh_points, settings, engine "casadi", guess (the solution folder it started from, or
None: the reference), friction_transition_velocity (the spheres' override, or None: the
model's), grf_tracked (spec.grf's force plates tracked, as
Moco's MocoContactTrackingGoal tracks them), grf_tracked_samples (how many of the 2 x
mesh_points foot readings are tracked: contact_tracking.tracked_feet), grf_tracking_cost (that
term of the objective at the solution), columns), `solution.npz` (raw variables, also when not
converged, for diagnosis) and, only when converged, `kinematics.sto` and `kinetics.sto`. Exit
code 0 when converged, 3 when not (never to be written as ground truth), 2 on bad input.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.opensim_files import write_sto

from .contact_tracking import (
    body_weight,
    foot_groups,
    grf_tracking_integrand,
    measured_foot_forces,
    tracked_feet,
)
from .dynamics import build_functions, implied_support
from .output import actuator_table, grf_table, kinematics_table, read_solution
from .problem import Window, simpson_weights, solve, tracked_weights
from .reference import Reference, mesh_window
from .spec import control_bounds, load_spec, model_setup, read_actuators


def prepare(spec, extras, settings):
    """(ModelSetup, Window, (t0, t1)) of a spec: tree, actuators, grid and references."""
    tree_desc = json.loads(Path(extras["tree"]).read_text())
    if extras.get("friction_transition_velocity"):
        for sphere in tree_desc["contact_spheres"]:
            sphere["transition_velocity"] = float(extras["friction_transition_velocity"])
    actuators = read_actuators(spec.model)
    setup = model_setup(tree_desc, actuators, settings.weld_joints, settings.friction_kink)
    reference = Reference(spec.coordinates, settings.filter_hz)
    t0, t1, n = mesh_window(spec.t0, spec.t1, reference.t_first, reference.t_last,
                            settings.mesh_interval)
    times = t0 + np.arange(2 * n + 1) * (0.5 * settings.mesh_interval)
    names = setup.free_names
    ranges = setup.tree.coordinate_ranges[setup.free]
    clamped = np.array([tree_desc["coordinates"][i]["clamped"] for i in setup.free])
    u_lo, u_hi = control_bounds(actuators, setup.actuator_names, settings.residual_bound)
    window = Window(times=times, q_ref=reference(names, times),
                    qd_ref=reference(names, times, 1), qdd_ref=reference(names, times, 2),
                    q_lower=np.where(clamped, ranges[:, 0], -np.inf),
                    q_upper=np.where(clamped, ranges[:, 1], np.inf),
                    u_lower=u_lo, u_upper=u_hi)
    if extras.get("guess"):
        window.guess = read_solution(extras["guess"], setup, times)
    if spec.grf and settings.contact_tracking_weight > 0:
        window.grf = measured_foot_forces(spec.grf, times)
        implied = implied_support(setup, window.q_ref, window.qd_ref, window.qdd_ref)
        window.grf_tracked = tracked_feet(window.grf, implied, body_weight(setup.tree))
    return setup, window, (t0, t1)


def grf_tracking_cost(setup, window, settings, forces) -> float:
    """The contact-tracking term of the objective (Simpson over the window) from the sphere
    forces (P, 3, S) of a solution: what Moco reports as its MocoContactTrackingGoal cost."""
    groups, weight_n = foot_groups(setup), body_weight(setup.tree)
    tracked = tracked_weights(window)
    values = [grf_tracking_integrand(forces[k], window.grf[k], groups, weight_n, tracked[k])
              for k in range(len(window.times))]
    n = (len(window.times) - 1) // 2
    h = float(window.times[2] - window.times[0])
    return float(settings.contact_tracking_weight * np.dot(simpson_weights(n, h), values))


def solve_window(spec_path) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    spec, extras, settings = load_spec(spec_path)
    workdir = Path(spec.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    setup, window, (t0, t1) = prepare(spec, extras, settings)
    sol = solve(setup, window, settings)
    np.savez(workdir / "solution.npz", times=window.times, q=sol.q, qd=sol.qd, qdd=sol.qdd,
             u=sol.u, coordinates=np.array(setup.free_names),
             actuators=np.array(setup.actuator_names))
    result = {"success": sol.success, "status": sol.status, "iterations": sol.iterations,
              "objective": sol.objective if sol.success else math.nan,
              "solve_seconds": time.perf_counter() - started, "nlp_seconds": sol.nlp_seconds,
              "cpu_seconds": time.process_time() - cpu_started,
              "t0": spec.t0, "t1": spec.t1, "solved_t0": t0, "solved_t1": t1,
              "mesh_points": len(window.times), "settings": asdict(settings),
              "engine": "casadi", "guess": extras.get("guess"),
              "friction_transition_velocity": extras.get("friction_transition_velocity"),
              "grf_tracked": window.grf is not None,
              "grf_tracked_samples": (int(np.sum(window.grf_tracked))
                                      if window.grf is not None else 0)}
    if sol.success:
        contact = build_functions(setup)["contact"].map(len(window.times))
        forces, points = contact(sol.q.T, sol.qd.T)
        S = len(setup.spheres)
        forces = np.array(forces).reshape(3, len(window.times), S).transpose(1, 0, 2)
        points = np.array(points).reshape(3, len(window.times), S).transpose(1, 0, 2)
        if window.grf is not None:
            result["grf_tracking_cost"] = grf_tracking_cost(setup, window, settings, forces)
        kinematics = kinematics_table(setup, window.times, sol.q, sol.qd, sol.qdd)
        kinetics = actuator_table(setup, window.times, sol.u).join(
            grf_table(setup, window.times, forces, points))
        write_sto(workdir / "kinematics.sto", kinematics, in_degrees=False, name="kinematics")
        write_sto(workdir / "kinetics.sto", kinetics, in_degrees=False, name="kinetics")
        result["columns"] = {"kinematics": list(kinematics.columns),
                             "kinetics": list(kinetics.columns)}
    (workdir / "result.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m collocation SPEC.json", file=sys.stderr)
        return 2
    try:
        result = solve_window(argv[0])
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: result[k] for k in ("success", "status", "iterations",
                                             "solve_seconds")}))
    return 0 if result["success"] else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
