"""Torque-driven MocoTrack of IK coordinates with foot contact spheres: one window, one process.

The recipe is Moco's own (`exampleMocoTrack.py`, example3DWalking): track the filtered IK
coordinates and their derivatives, minimise actuator effort with the pelvis residuals penalised
more, contact spheres decide the ground reaction forces (and, where the trial has force plates,
`MocoContactTrackingGoal` tracks them). Hermite–Simpson in explicit mode converged here where
implicit mode was 30x slower (DESIGN.md trap 5), and the tracked states as the initial guess cut
the iterations several-fold.

Run as `python -m osim.moco_track SPEC.json`: it works inside the spec's scratch folder (MocoTrack
writes `*_tracked_states.sto` into the working directory, trap 4) and writes there:
`problem.omoco`, `solution.sto`, `kinematics.sto`, `kinetics.sto`, `result.json`.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

GRAVITY = 9.80665


@dataclass(frozen=True)
class TrackSettings:
    """Everything that changes a solution (hashed into artifact paths by the tasks)."""

    # s. The contact spheres (1e6 N/m on a body of ~70 kg) ring at tens of hertz: a 0.1 s mesh
    # cannot resolve them and the solver wandered into solutions that fly or fall over, while
    # 0.025 s tracked a synthetic squat to 0.1 deg with residuals of 0.001 BW.
    mesh_interval: float = 0.025
    filter_hz: float = 6.0               # low-pass of the tracked coordinates
    states_weight: float = 10.0          # global coordinate-tracking weight
    # Moco's 3D walking recipe leaves the pelvis height untracked: marker-based IK puts the feet
    # centimetres into (or above) the floor of the contact model, and tracking that height makes
    # the optimizer lift a foot off the ground and carry the body on the pelvis residual.
    pelvis_height_weight: float = 0.0
    # Initial states within these distances of the (filtered) reference, as Moco's example does:
    # left free, a short window can start with an upward velocity and fly over the floor.
    initial_value_bound: float = 0.05    # rad or m
    initial_speed_bound: float = 0.1     # rad/s or m/s
    effort_weight: float = 0.01          # global control-effort weight
    # Pelvis residuals cost this many times more than joint torques. At 10 a synthetic walking
    # stride leaned on them (0.064 BW, 0.21 BW*h RMS, saturating their bounds); at 1000 the same
    # stride needed 0.005 BW and 0.04 BW*h, the contact spheres carrying the body.
    residual_effort_factor: float = 1000.0
    # Residual controls are bounded, in units of their optimal force (sized to the quality gate:
    # 0.05 BW, 0.1 BW·h). Penalties alone were not enough: IPOPT settled in a local minimum that
    # carried most of the body weight on the pelvis residual with both feet off the floor.
    residual_bound: float = 2.0
    contact_tracking_weight: float = 1e-2  # used only where the trial has force plates
    convergence_tolerance: float = 1e-2
    constraint_tolerance: float = 1e-4
    max_iterations: int = 500
    scheme: str = "hermite-simpson"
    weld_joints: tuple[str, ...] = ()    # joints the trial does not track (e.g. wrists, mtp)
    timeout_s: float = 1800.0
    # "moco" (MocoTrack, the reference) or "casadi" (collocation/: the same problem with exact
    # derivatives, in a process that never imports opensim; tracks force plates too, see
    # docs/engine.md for where it differs from MocoContactTrackingGoal).
    engine: str = "moco"
    # The CasADi engine's formulation (Moco has neither; docs/engine.md): IPOPT in scaled
    # variables (speeds and accelerations by their reference's largest value) and the width of
    # the rounding of the friction ramp's kink, in units of the transition velocity (0: Simbody's
    # law). Rounded over 1 %, two synthetic walks that cycled for 500 iterations at a heel
    # strike converge cold in 54 and 94; the friction then differs from OpenSim's by at most
    # 0.5 % of the static friction force, at the kink only.
    scale_variables: bool = True
    friction_kink: float = 0.01


#: Settings only the CasADi engine reads: they do not change a Moco solution, nor its path.
CASADI_ONLY = ("scale_variables", "friction_kink")


# Per-activity presets: filter cut-offs follow the content of each motion (gait at 6 Hz, faster
# motions need more bandwidth, and shorter impacts a finer mesh).
PRESETS: dict[str, TrackSettings] = {
    "walking": TrackSettings(),
    "running": TrackSettings(filter_hz=12.0, mesh_interval=0.015),
    "jump": TrackSettings(filter_hz=12.0, mesh_interval=0.015),
    "squat": TrackSettings(filter_hz=4.0),
    "sit_to_stand": TrackSettings(filter_hz=4.0),
    "static": TrackSettings(filter_hz=2.0),
    "other": TrackSettings(),
}


@dataclass
class WindowSpec:
    model: str                       # torque-driven .osim with contact spheres
    coordinates: str                 # STO of IK coordinates (rad, m), OpenSim coordinate names
    t0: float
    t1: float
    workdir: str
    settings: dict = field(default_factory=lambda: asdict(TrackSettings()))
    grf: str | None = None           # measured GRF .mot with ground_force_r_* / _l_* columns


def contact_force_paths(model) -> dict[str, list[str]]:
    """SmoothSphereHalfSpaceForce paths by foot, from the frame each sphere is attached to."""
    import opensim

    sides: dict[str, list[str]] = {"r": [], "l": []}
    # Moco's examples add the contact forces at the model root, not in the force set.
    for component in model.getComponentsList():
        if component.getConcreteClassName() != "SmoothSphereHalfSpaceForce":
            continue
        force = opensim.SmoothSphereHalfSpaceForce.safeDownCast(component)
        sphere = force.getConnectee("sphere")
        body = sphere.getFrame().findBaseFrame().getName()
        side = body.rsplit("_", 1)[-1]
        if side not in sides:
            raise ValueError(f"contact sphere {force.getName()} is on body {body}, "
                             "which names no side (_r or _l)")
        sides[side].append(force.getAbsolutePathString())
    return sides


def _processor(spec: WindowSpec, settings: TrackSettings):
    import opensim

    model = opensim.Model(spec.model)
    # Names a lab's model lacks are skipped: the setting lists the Rajagopal family's joints.
    weld = [name for name in settings.weld_joints if model.getJointSet().contains(name)]
    if weld:
        # Joints the markers barely see (wrists, toes) add variables and stiff dynamics for
        # nothing; their coordinates vanish, so their actuators must go first.
        welded = set()
        for joint_name in weld:
            joint = model.getJointSet().get(joint_name)
            welded.update(joint.get_coordinates(i).getName()
                          for i in range(joint.numCoordinates()))
        forces = model.updForceSet()
        for i in reversed(range(forces.getSize())):
            actuator = opensim.CoordinateActuator.safeDownCast(forces.get(i))
            if actuator is not None and actuator.get_coordinate() in welded:
                forces.remove(i)
        model.finalizeConnections()
    processor = opensim.ModelProcessor(model)
    if weld:
        processor.append(opensim.ModOpReplaceJointsWithWelds(opensim.StdVectorString(weld)))
    return processor


def _coordinate_path(model, name: str) -> str | None:
    coordinates = model.getCoordinateSet()
    return coordinates.get(name).getAbsolutePathString() if coordinates.contains(name) else None


def _reference(spec: WindowSpec, settings: TrackSettings, with_speeds: bool = False):
    import opensim

    table = opensim.TableProcessor(spec.coordinates)
    # Marker noise differentiated twice swamps the dynamics; Moco's recipe filters at ~6 Hz.
    table.append(opensim.TabOpLowPassFilter(settings.filter_hz))
    table.append(opensim.TabOpUseAbsoluteStateNames())
    if with_speeds:
        table.append(opensim.TabOpAppendCoordinateValueDerivativesAsSpeeds())
    return table


def build_study(spec: WindowSpec):
    """The MocoStudy of one window, built the MocoTrack way (initialize, customise, reset)."""
    import opensim

    settings = TrackSettings(**{k: (tuple(v) if k == "weld_joints" else v)
                                for k, v in spec.settings.items()})
    processor = _processor(spec, settings)
    model = processor.process()
    model.initSystem()

    table = _reference(spec, settings)

    track = opensim.MocoTrack()
    track.setName("track")
    track.setModel(processor)
    track.setStatesReference(table)
    track.set_states_global_tracking_weight(settings.states_weight)
    states = opensim.MocoWeightSet()
    pelvis_ty = _coordinate_path(model, "pelvis_ty")
    if pelvis_ty:
        states.cloneAndAppend(opensim.MocoWeight(f"{pelvis_ty}/value",
                                                 settings.pelvis_height_weight))
    track.set_states_weight_set(states)
    track.set_allow_unused_references(True)
    # Speeds from the coordinates' derivatives are tracked too (the IK has no speeds of its own).
    track.set_track_reference_position_derivatives(True)
    track.set_apply_tracked_states_to_guess(True)
    track.set_control_effort_weight(settings.effort_weight)
    controls = opensim.MocoWeightSet()
    residuals = [a.getAbsolutePathString() for a in model.getActuators()
                 if a.getName().startswith("residual_")]
    for path in residuals:
        controls.cloneAndAppend(opensim.MocoWeight(path, settings.residual_effort_factor))
    track.set_controls_weight_set(controls)
    # One processed reference (filtered, with speeds) gives the window and the initial bounds.
    reference = _reference(spec, settings, with_speeds=True).process(model)
    times = reference.getIndependentColumn()
    # Moco lays its grid as t0 + n * mesh_interval, and 56 * 0.025 = 1.4000000000000001 lies
    # past a reference ending at 1.4 ("new final time cannot be less than existing final
    # time"): end the window on the last grid point inside the reference.
    t0 = math.ceil(max(spec.t0, times[0]) * 1e9) / 1e9
    available = math.floor(min(spec.t1, times[-1]) * 1e9) / 1e9
    n = int(math.floor((available - t0) / settings.mesh_interval + 1e-9))
    while n > 1 and t0 + n * settings.mesh_interval > available:
        n -= 1
    t1 = t0 + n * settings.mesh_interval
    track.set_initial_time(t0)
    track.set_final_time(t1)
    track.set_mesh_interval(settings.mesh_interval)

    study = track.initialize()
    problem = study.updProblem()
    for path in residuals:
        problem.setControlInfo(path, opensim.MocoBounds(-settings.residual_bound,
                                                        settings.residual_bound))
    row = reference.getRowAtIndex(reference.getNearestRowIndexForTime(t0))
    for i, label in enumerate(reference.getColumnLabels()):
        if label.endswith("/value"):
            bound = settings.initial_value_bound
        elif label.endswith("/speed"):
            bound = settings.initial_speed_bound
        else:
            continue
        problem.setStateInfo(label, opensim.MocoBounds(),
                             opensim.MocoInitialBounds(row[i] - bound, row[i] + bound))
    sides = contact_force_paths(model)
    if spec.grf and settings.contact_tracking_weight > 0:
        loads = write_external_loads(spec.grf, Path(spec.workdir) / "external_loads.xml")
        goal = opensim.MocoContactTrackingGoal("grf_tracking", settings.contact_tracking_weight)
        goal.setExternalLoadsFile(str(loads))
        for side, label in (("r", "right"), ("l", "left")):
            goal.addContactGroup(opensim.MocoContactTrackingGoalGroup(
                opensim.StdVectorString(sides[side]), f"{label}_grf",
                opensim.StdVectorString([f"/bodyset/toes_{side}"])))
        problem.addGoal(goal)

    solver = opensim.MocoCasADiSolver.safeDownCast(study.updSolver())
    solver.set_transcription_scheme(settings.scheme)
    solver.set_multibody_dynamics_mode("explicit")
    solver.set_optim_convergence_tolerance(settings.convergence_tolerance)
    solver.set_optim_constraint_tolerance(settings.constraint_tolerance)
    solver.set_optim_max_iterations(settings.max_iterations)
    # MocoTrack turns mesh_interval into ceil((t1 - t0) / mesh_interval) intervals, and in
    # floating point (1.1 - 0.6) / 0.025 = 20.000000000000004: 21 intervals of 0.0238 s instead
    # of 20 of 0.025 s. Set the count both engines use (collocation.reference.mesh_window).
    solver.set_num_mesh_intervals(n)
    # One thread per solve: trials run in parallel instead (trap 5).
    solver.set_parallel(0)
    solver.resetProblem(problem)
    return study, model, settings, sides


def write_external_loads(grf: str | Path, path: Path) -> Path:
    """ExternalLoads XML applying a GRF table (OpenSim per-foot columns `ground_force_<s>_v*`,
    `_p*`, `ground_torque_<s>_*`, all in ground) to calcn_r and calcn_l."""
    import opensim

    loads = opensim.ExternalLoads()
    loads.setDataFileName(str(Path(grf).resolve()))
    for side in ("r", "l"):
        force = opensim.ExternalForce()
        force.setName(f"{'right' if side == 'r' else 'left'}_grf")
        force.set_applied_to_body(f"calcn_{side}")
        force.set_force_expressed_in_body("ground")
        force.set_point_expressed_in_body("ground")
        force.set_force_identifier(f"ground_force_{side}_v")
        force.set_point_identifier(f"ground_force_{side}_p")
        force.set_torque_identifier(f"ground_torque_{side}_")
        loads.cloneAndAppend(force)
    path.parent.mkdir(parents=True, exist_ok=True)
    loads.printToXML(str(path))
    return path


def solve_window(spec: WindowSpec) -> dict:
    """Solve one window inside spec.workdir and write its results there; returns result.json."""
    workdir = Path(spec.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    started = time.perf_counter()
    study, model, settings, sides = build_study(spec)
    study.printToXML(str(workdir / "problem.omoco"))
    solution = study.solve()
    seconds = time.perf_counter() - started
    success = bool(solution.success())
    solution.unseal()  # a failed solution is still written, for diagnosis, never as ground truth
    solution.write(str(workdir / "solution.sto"))
    result = {"success": success, "status": solution.getStatus(),
              "iterations": int(solution.getNumIterations()),
              "objective": float(solution.getObjective()) if success else math.nan,
              "solve_seconds": seconds, "t0": spec.t0, "t1": spec.t1,
              "solved_t0": float(solution.getInitialTime()),
              "solved_t1": float(solution.getFinalTime()),
              "mesh_points": int(solution.getNumTimes()),
              "settings": asdict(settings)}
    if success:
        result.update(_extract(model, solution, sides, workdir))
    (workdir / "result.json").write_text(json.dumps(result, indent=2, default=_jsonable))
    return result


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _extract(model, solution, sides, workdir: Path) -> dict:
    """States, joint torques, residuals and GRFs as OpenSim-named tables beside the solution."""
    import opensim

    from .extract import kinematics_table, kinetics_table, write_table

    model.initSystem()
    kinematics = kinematics_table(model, solution)
    grf = opensim.createExternalLoadsTableForGait(
        model, solution, opensim.StdVectorString(sides["r"]), opensim.StdVectorString(sides["l"]))
    kinetics = kinetics_table(model, solution, grf)
    write_table(kinematics, workdir / "kinematics.sto")
    write_table(kinetics, workdir / "kinetics.sto")
    return {"columns": {"kinematics": list(kinematics.columns), "kinetics": list(kinetics.columns)}}


def main(argv: list[str]) -> int:
    spec = WindowSpec(**json.loads(Path(argv[0]).read_text()))
    result = solve_window(spec)
    print(json.dumps({k: result[k] for k in ("success", "status", "iterations",
                                             "solve_seconds")}))
    return 0 if result["success"] else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
