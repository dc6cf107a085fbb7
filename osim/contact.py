"""Foot-ground contact: a floor half-space and six smooth Hunt-Crossley spheres per foot.

The layout and parameters are those of OpenSim Moco's 3D walking example (also used by OpenCap):
`example3DWalking/subject_walk_scaled_ContactGeometrySet.xml` and `..._ContactForceSet.xml`
(4 spheres on calcn, 2 on toes; stiffness 1e6, dissipation 2.0, static and dynamic friction 0.8,
viscous friction 0.5, transition velocity 0.2 m/s). Radius: 0.032 m as in OpenCap and this
project's design notes (the Moco files themselves use 0.035 m); pass `radius=` to change it.

Sphere centres are that subject's, multiplied per axis by a foot scale (target foot / Moco
subject's foot). `add_foot_contact` works on any model with calcn_r/l and toes_r/l bodies, so a
lab's own model gets the same contact as the built-in one.
"""
from __future__ import annotations

import math

import numpy as np
import opensim

from pipeline.errors import ModelError

SPHERE_RADIUS_M = 0.032
STIFFNESS = 1.0e6            # N/m^2, plane-strain modulus
DISSIPATION = 2.0            # s/m
STATIC_FRICTION = 0.8
DYNAMIC_FRICTION = 0.8
VISCOUS_FRICTION = 0.5
TRANSITION_VELOCITY = 0.2    # m/s
FLOOR_NAME = "floor"

#: (sphere base name, force base name, body base name, centre in that body's frame, m) for the
#: right foot of the Moco example subject; the left foot mirrors z.
REFERENCE_SPHERES = (
    ("heel", "contactHeel", "calcn", (0.0146421, 0.0, -0.0122799)),
    ("lateralRearfoot", "contactLateralRearfoot", "calcn", (0.0849291, 0.0, 0.0338649)),
    ("lateralMidfoot", "contactLateralMidfoot", "calcn", (0.153362, 0.0, 0.0594829)),
    ("lateralToe", "contactLateralToe", "toes", (0.023014, 0.0, 0.0670461)),
    ("medialToe", "contactMedialToe", "toes", (0.074363, 0.0, -0.026039)),
    ("medialMidfoot", "contactMedialMidfoot", "calcn", (0.203637, 0.0, -0.0398688)),
)

#: Origin of toes_r in calcn_r (the mtp joint centre) of the Moco example subject, m. Its length
#: is the reference when a foot scale is estimated from a model's own geometry.
REFERENCE_MTP_OFFSET_M = (0.206623, -0.00223417, 0.00140967)

SIDES = ("r", "l")


def sphere_locations(foot_scale: tuple[float, float, float], side: str) -> list[tuple]:
    """[(sphere name, force name, body name, centre (m) in the body frame)] for one foot."""
    sx, sy, sz = foot_scale
    mirror = 1.0 if side == "r" else -1.0
    return [(f"{sphere}_{side}", f"{force}_{side}", f"{body}_{side}",
             (x * sx, y * sy, mirror * z * sz))
            for sphere, force, body, (x, y, z) in REFERENCE_SPHERES]


def _vec(v) -> np.ndarray:
    return np.array([v.get(i) for i in range(3)])


def estimate_foot_scale(model: opensim.Model, side: str) -> tuple[float, float, float]:
    """Foot scale of one side from the model's own mtp joint: the distance from the calcn origin
    to the toes origin over the Moco subject's (0.2066 m), applied to all three axes. A scaled
    Rajagopal-family model carries its foot scale in exactly this offset. Raises ModelError when
    no joint connects calcn_<side> to toes_<side>."""
    calcn, toes = f"calcn_{side}", f"toes_{side}"
    joints = model.getJointSet()
    for i in range(joints.getSize()):
        joint = joints.get(i)
        parent, child = joint.getParentFrame(), joint.getChildFrame()
        if (parent.findBaseFrame().getName(), child.findBaseFrame().getName()) != (calcn, toes):
            continue
        # At zero joint angle the two joint frames coincide: toes origin -> child frame -> calcn.
        in_child = child.findTransformInBaseFrame().shiftBaseStationToFrame(opensim.Vec3(0.0))
        offset = _vec(parent.findTransformInBaseFrame().shiftFrameStationToBase(in_child))
        scale = float(np.linalg.norm(offset) / np.linalg.norm(REFERENCE_MTP_OFFSET_M))
        return (scale, scale, scale)
    raise ModelError(f"no joint connects {calcn} to {toes}",
                     hint="pass foot_scale=(sx, sy, sz) to add_foot_contact")


def _check_scale(foot_scale) -> tuple[float, float, float]:
    if isinstance(foot_scale, (int, float)):
        foot_scale = (foot_scale,) * 3
    scale = tuple(float(v) for v in foot_scale)
    if len(scale) != 3 or not all(math.isfinite(v) and 0.3 <= v <= 2.0 for v in scale):
        raise ModelError(f"foot scale {foot_scale!r} must be three numbers between 0.3 and 2",
                         hint="foot scale is the foot size relative to the Moco example subject")
    return scale


def add_foot_contact(model: opensim.Model, foot_scale=None,
                     radius: float = SPHERE_RADIUS_M) -> list[str]:
    """Add the floor and 12 SmoothSphereHalfSpaceForce spheres to `model`; return force names.

    foot_scale: (sx, sy, sz) or one number, the foot size relative to the Moco example subject
        (x forward, y up, z lateral); None estimates it per side with `estimate_foot_scale`.
    radius: sphere radius, m.
    The model needs bodies calcn_r/l and toes_r/l and no contact of these names yet. Connections
    are finalized on return; call initSystem() before simulating.
    """
    model.finalizeFromProperties()
    model.finalizeConnections()
    bodies = model.getBodySet()
    missing = [f"{b}_{s}" for s in SIDES for b in ("calcn", "toes")
               if not bodies.contains(f"{b}_{s}")]
    if missing:
        raise ModelError(f"model {model.getName()!r} has no bodies {', '.join(missing)}",
                         hint="foot contact needs Rajagopal-style calcn_r/l and toes_r/l bodies")
    if model.getForceSet().contains("contactHeel_r"):
        raise ModelError(f"model {model.getName()!r} already has foot contact (contactHeel_r)")
    if not 0.005 <= radius <= 0.1:
        raise ModelError(f"contact sphere radius {radius} m is outside 0.005-0.1 m")

    geometry = model.getContactGeometrySet()
    if geometry.contains(FLOOR_NAME):
        floor = opensim.ContactHalfSpace.safeDownCast(geometry.get(FLOOR_NAME))
    else:
        # The half-space's outward normal is its -x axis; rotating -90 deg about z makes it +y.
        floor = opensim.ContactHalfSpace(opensim.Vec3(0.0), opensim.Vec3(0.0, 0.0, -math.pi / 2),
                                         model.getGround(), FLOOR_NAME)
        model.addContactGeometry(floor)

    names = []
    for side in SIDES:
        scale = estimate_foot_scale(model, side) if foot_scale is None else _check_scale(foot_scale)
        for sphere_name, force_name, body_name, centre in sphere_locations(scale, side):
            sphere = opensim.ContactSphere(radius, opensim.Vec3(*centre), bodies.get(body_name),
                                           sphere_name)
            model.addContactGeometry(sphere)
            force = opensim.SmoothSphereHalfSpaceForce(force_name, sphere, floor)
            force.set_stiffness(STIFFNESS)
            force.set_dissipation(DISSIPATION)
            force.set_static_friction(STATIC_FRICTION)
            force.set_dynamic_friction(DYNAMIC_FRICTION)
            force.set_viscous_friction(VISCOUS_FRICTION)
            force.set_transition_velocity(TRANSITION_VELOCITY)
            model.addForce(force)
            names.append(force_name)
    model.finalizeConnections()
    return names


def vertical_contact_force(model: opensim.Model, state, force_names: list[str] | None = None,
                           ) -> float:
    """Total vertical force (N, +y up) the floor applies to the feet through the contact spheres.

    state must be realized to Dynamics. force_names defaults to every SmoothSphereHalfSpaceForce.
    Each force records the force on the sphere's body first (Fx, Fy, Fz, Tx, Ty, Tz), then on the
    half-space's; the sphere's Fy is the floor's push on the foot.
    """
    forces = model.getForceSet()
    if force_names is None:
        force_names = [forces.get(i).getName() for i in range(forces.getSize())
                       if forces.get(i).getConcreteClassName() == "SmoothSphereHalfSpaceForce"]
    total = 0.0
    for name in force_names:
        values = forces.get(name).getRecordValues(state)
        total += values.get(1)
    return total
