"""A lab's model made ready for torque-driven tracking, the way Moco's examples do it:
muscles removed, one coordinate actuator per degree of freedom (`tau_<coord>`), pelvis residuals
(`residual_<coord>`) sized to the quality gates, and foot contact spheres where the model has none.
"""
from __future__ import annotations

import opensim

from pipeline.errors import ModelError

from .builtin_model import actuator_name, torque_scale
from .contact import add_foot_contact

# Coordinates the built-in sizing rule does not know get this fraction of body weight x height.
DEFAULT_TORQUE_FRACTION = 0.05
GRAVITY = 9.80665


def has_foot_contact(model: opensim.Model) -> bool:
    # OpenSim's component iterator must run to its end: abandoning it (as any() would) raises.
    kinds = {c.getConcreteClassName() for c in model.getComponentsList()}
    return "SmoothSphereHalfSpaceForce" in kinds


def _free_coordinates(model: opensim.Model) -> list:
    """Coordinates that move on their own: not locked, not coupled to others by a constraint."""
    out = []
    for coord in model.getCoordinateSet():
        if coord.getMotionType() == opensim.Coordinate.Coupled or coord.get_locked():
            continue
        out.append(coord)
    return out


def _optimal_force(name: str, root_joint_coords: set[str], height_m: float,
                   mass_kg: float) -> float:
    if name in root_joint_coords:
        # A lab model's root joint may name its coordinates differently: size them like the pelvis.
        return torque_scale("pelvis_tx" if name.endswith(("_tx", "_ty", "_tz"))
                            else "pelvis_tilt", height_m, mass_kg)
    try:
        return torque_scale(name, height_m, mass_kg)
    except ModelError:
        return DEFAULT_TORQUE_FRACTION * mass_kg * GRAVITY * height_m


def prepare_for_tracking(model: opensim.Model, height_m: float, source: str = "") -> opensim.Model:
    """A torque-driven copy of `model` for MocoTrack. `height_m` sizes the actuators."""
    try:
        model.initSystem()
    except Exception as exc:  # OpenSim raises its own RuntimeError subclasses
        raise ModelError(f"OpenSim cannot initialise the model: {exc}", file=source,
                         hint="open it in the OpenSim GUI and fix the reported component") from None
    mass_kg = model.getTotalMass(model.getWorkingState())
    processor = opensim.ModelProcessor(model)
    # A torque-driven problem: muscles would add states and stiffness without adding information.
    processor.append(opensim.ModOpRemoveMuscles())
    prepared = processor.process()
    forces = prepared.updForceSet()
    # The lab's own coordinate actuators are replaced so that every model is actuated, and its
    # residuals penalised, the same way (names and sizes as in the built-in model).
    for i in reversed(range(forces.getSize())):
        if opensim.CoordinateActuator.safeDownCast(forces.get(i)) is not None:
            forces.remove(i)
    prepared.finalizeConnections()
    root = _root_joint(prepared)
    root_coords = {root.get_coordinates(i).getName() for i in range(root.numCoordinates())}
    for coord in _free_coordinates(prepared):
        name = coord.getName()
        actuator = opensim.CoordinateActuator(name)
        actuator.setName(f"residual_{name}" if name in root_coords else actuator_name(name))
        actuator.setOptimalForce(_optimal_force(name, root_coords, height_m, mass_kg))
        prepared.addForce(actuator)
    if not has_foot_contact(prepared):
        add_foot_contact(prepared)
    prepared.finalizeConnections()
    prepared.initSystem()
    return prepared


def _root_joint(model: opensim.Model):
    for joint in model.getJointSet():
        if joint.getParentFrame().findBaseFrame().getName() == "ground" and \
                joint.numCoordinates() == 6:
            return joint
    raise ModelError("the model has no 6-degree-of-freedom joint to ground (a floating base)",
                     hint="tracking needs a free root joint such as ground_pelvis")
