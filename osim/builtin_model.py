"""The built-in full-body model: Rajagopal 2016 topology and coordinate names, sized from stature,
mass and sex with de Leva (1996) segment parameters, torque-driven, with foot-ground contact.

    model = build_model(1.75, 70.0, "F")        # finalized and connected opensim.Model
    write_model(model, "subject01.osim")        # atomic: temp file in the folder, then rename

Conventions follow OpenSim's Rajagopal model (checked against Moco's example3DWalking
`subject_walk_scaled.osim`): x forward, y up, z right; every body frame is parallel to ground in
the default pose (the anatomical position: all coordinates zero, palms forward), so each joint is
a CustomJoint whose offset frames only translate and whose rotation axes are Rajagopal's, written
in the parent body's frame. Left-side axes are the mirror images -(ax, ay, -az) of the right ones,
with coefficient +1 (Rajagopal writes some as +axis with coefficient -1: same motion). The knee is
a single hinge (no coupled translations, no patella). Details and sources: docs/builtin_model.md.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import opensim

from osim import anthropometry, contact
from osim.anthropometry import lump, principal_inertia
from osim.markers import marker_locations
from pipeline.errors import ModelError

# -- Reference geometry taken from Moco's Rajagopal-derived subject (stature about 1.80 m) -------
#: Talus origin (ankle centre) to calcn origin, and calcn to toes (mtp centre), m, for foot scale 1.
#: The mtp offset's y (-0.0022 m there) is set to 0: all twelve contact spheres touch a flat floor.
CALCN_IN_TALUS_REF = (-0.0598975, -0.0562906, 0.0101930)
TOES_IN_CALCN_REF = (0.206623, 0.0, 0.00140967)
#: Heel (back of the calcaneus, calcn frame) and toe tip (toes frame) x, m, for foot scale 1; the
#: distance between them is the reference foot length that de Leva's HEEL-TTIP length is matched to.
HEEL_X_REF = -0.0218
TOE_TIP_X_REF = 0.078
REF_FOOT_LENGTH_M = TOES_IN_CALCN_REF[0] + TOE_TIP_X_REF - HEEL_X_REF
#: Elbow centre to radius origin (proximal radio-ulnar joint) and to the wrist, ulna frame, m.
RADIUS_IN_ULNA_REF = (-0.00719347, -0.0130211, 0.0284747)
WRIST_IN_ULNA_REF = (-0.00719347 - 0.00940702, -0.0130211 - 0.236097, 0.0284747 + 0.014858)

#: Foot mass split talus : calcn : toes, from Rajagopal/gait2392 (0.1 : 1.25 : 0.2166 kg).
FOOT_SPLIT = {"talus": 0.1 / 1.5666, "calcn": 1.25 / 1.5666, "toes": 0.2166 / 1.5666}
#: Centres of mass of talus (talus frame) and toes (toes frame) per unit foot scale, m (Rajagopal).
TALUS_COM_REF = (0.0, 0.0, 0.0)
TOES_COM_REF = (0.0346, 0.006, -0.0175)
#: Height of the whole-foot centre of mass above the calcn origin per unit foot scale, m.
FOOT_COM_Y_REF = 0.015

#: Breadths between bony landmarks as fractions of stature (typical adult anthropometry).
BREADTHS = {"knee": 0.055, "ankle": 0.041, "elbow": 0.037, "wrist": 0.032}


# -- Topology: joints in OpenSim order; each coordinate (name, right-side axis, range in degrees) --
@dataclass(frozen=True)
class JointSpec:
    name: str
    parent: str
    child: str
    location: str                       # Geometry attribute: joint centre in the parent frame
    coordinates: tuple = ()             # rotations: (name, axis, (lo, hi) deg)
    bilateral: bool = True


HIP = (("hip_flexion", (0, 0, 1), (-30, 120)), ("hip_adduction", (1, 0, 0), (-50, 30)),
       ("hip_rotation", (0, 1, 0), (-40, 40)))
ARM = (("arm_flex", (0, 0, 1), (-90, 90)), ("arm_add", (1, 0, 0), (-120, 90)),
       ("arm_rot", (0, 1, 0), (-90, 90)))
JOINTS = (
    JointSpec("hip", "pelvis", "femur", "hip", HIP),
    JointSpec("knee", "femur", "tibia", "knee", (("knee_angle", (0, 0, -1), (0, 140)),)),
    JointSpec("ankle", "tibia", "talus", "ankle",
              (("ankle_angle", (-0.10501355, -0.17402245, 0.97912632), (-50, 50)),)),
    JointSpec("subtalar", "talus", "calcn", "calcn_in_talus",
              (("subtalar_angle", (0.78718, 0.60475, -0.12094), (-20, 20)),)),
    JointSpec("mtp", "calcn", "toes", "toes_in_calcn",
              (("mtp_angle", (-0.5809, 0.0, 0.81393), (-30, 30)),)),
    JointSpec("back", "pelvis", "torso", "back",
              (("lumbar_extension", (0, 0, 1), (-90, 90)), ("lumbar_bending", (1, 0, 0), (-90, 90)),
               ("lumbar_rotation", (0, 1, 0), (-90, 90))), bilateral=False),
    JointSpec("acromial", "torso", "humerus", "shoulder", ARM),
    JointSpec("elbow", "humerus", "ulna", "elbow",
              (("elbow_flex", (0.226047, 0.022269, 0.973862), (0, 150)),)),
    JointSpec("radioulnar", "ulna", "radius", "radius_in_ulna",
              (("pro_sup", (0.056398, 0.998406, 0.001952), (0, math.degrees(2.09))),)),
    JointSpec("radius_hand", "radius", "hand", "wrist_in_radius",
              (("wrist_flex", (0, 0, 1), (-70, 70)), ("wrist_dev", (1, 0, 0), (-25, 35)))),
)
PELVIS_COORDINATES = ("pelvis_tilt", "pelvis_list", "pelvis_rotation",
                      "pelvis_tx", "pelvis_ty", "pelvis_tz")
PELVIS_RANGES = ((-180, 180), (-180, 180), (-180, 180), (-50.0, 50.0), (-1.0, 2.0), (-3.0, 3.0))
LEG_JOINTS = ("hip", "knee", "ankle", "subtalar", "mtp")
ARM_JOINTS = ("acromial", "elbow", "radioulnar", "radius_hand")

#: Torque scale (optimal force) of each joint's CoordinateActuator as a fraction of body weight
#: times stature: about the peak net moment of walking (ankle and hip ~1.3, knee ~0.9 N m/kg).
TORQUE_SCALE = {"hip": 0.09, "knee": 0.06, "ankle": 0.09, "subtalar": 0.03, "mtp": 0.02,
                "lumbar": 0.08, "arm": 0.02, "elbow": 0.015, "pro": 0.005, "wrist": 0.005}
GRAVITY = 9.80665


def _ordered_joints() -> list[tuple[JointSpec, str]]:
    """(spec, side) in OpenSim order: right leg, left leg, back, right arm, left arm."""
    spec = {j.name: j for j in JOINTS}
    order = [(spec[n], "r") for n in LEG_JOINTS] + [(spec[n], "l") for n in LEG_JOINTS]
    order.append((spec["back"], ""))
    order += [(spec[n], "r") for n in ARM_JOINTS] + [(spec[n], "l") for n in ARM_JOINTS]
    return order


def _sided(name: str, side: str) -> str:
    return f"{name}_{side}" if side else name


COORDINATE_NAMES: tuple[str, ...] = PELVIS_COORDINATES + tuple(
    _sided(c[0], side) for j, side in _ordered_joints() for c in j.coordinates)
BODY_NAMES: tuple[str, ...] = ("pelvis",) + tuple(_sided(j.child, side)
                                                  for j, side in _ordered_joints())


# -- Geometry -------------------------------------------------------------------------------------
@dataclass
class Geometry:
    """Dimensions (m) and landmark positions (m, in the named body's frame) of one subject."""

    H: float
    s: float                      # foot scale relative to the Moco example subject
    chain_factor: float
    segments: dict = field(repr=False)
    thigh: float = 0.0
    shank: float = 0.0
    upper_arm: float = 0.0
    forearm: float = 0.0
    hand: float = 0.0
    foot_length: float = 0.0
    ankle_height: float = 0.0
    knee_width: float = 0.0
    ankle_width: float = 0.0
    elbow_width: float = 0.0
    wrist_width: float = 0.0
    sole_y: float = 0.0           # floor level in calcn and toes frames in the default pose
    heel_x: float = 0.0           # calcn frame
    toe_tip_x: float = 0.0        # toes frame
    pelvis_height: float = 0.0    # default pelvis_ty
    points: dict = field(default_factory=dict, repr=False)

    def __getattr__(self, name):  # landmark points read like attributes: g.c7, g.hip, ...
        points = self.__dict__.get("points", {})
        if name in points:
            return points[name]
        raise AttributeError(name)


def _scaled(v, k) -> tuple[float, float, float]:
    return tuple(float(x) * k for x in v)


def model_geometry(height_m: float, mass_kg: float, sex: str) -> Geometry:
    """All lengths and joint/landmark positions for a subject (no opensim objects)."""
    sex = anthropometry.validate_subject(height_m, mass_kg, sex)
    H, mass_kg = float(height_m), float(mass_kg)
    foot_length = anthropometry.segment_length("foot", H, sex)
    s = foot_length / REF_FOOT_LENGTH_M
    # Sole = bottom of the contact spheres, whose centres lie at calcn y = 0.
    ankle_height = -CALCN_IN_TALUS_REF[1] * s + contact.SPHERE_RADIUS_M
    seg, k = anthropometry.body_segments(H, mass_kg, sex, ankle_height)
    g = Geometry(H=H, s=s, chain_factor=k, segments=seg, thigh=seg["thigh"].length,
                 shank=seg["shank"].length, upper_arm=seg["upper_arm"].length,
                 forearm=seg["forearm"].length, hand=seg["hand"].length,
                 foot_length=foot_length, ankle_height=ankle_height,
                 knee_width=BREADTHS["knee"] * H, ankle_width=BREADTHS["ankle"] * H,
                 elbow_width=BREADTHS["elbow"] * H, wrist_width=BREADTHS["wrist"] * H,
                 sole_y=-contact.SPHERE_RADIUS_M, heel_x=HEEL_X_REF * s,
                 toe_tip_x=TOE_TIP_X_REF * s)
    p = g.points
    # Pelvis frame: origin at mid-ASIS. Hip centres after Harrington et al. (2007) for a pelvis
    # of typical width; lumbosacral joint placed as in Rajagopal's pelvis.
    p["hip"] = (-0.0284 * H, -0.048 * H, 0.050 * H)
    p["midh"] = (-0.0284 * H, -0.048 * H, 0.0)
    p["back"] = (-0.060 * H, 0.049 * H, 0.0)
    # Torso frame: origin at the back joint. Heights above mid-hip from de Leva's trunk lengths.
    mx, my = p["midh"][0] - p["back"][0], p["midh"][1] - p["back"][1]
    trunk = sum(seg[n].length for n in ("upper_trunk", "middle_trunk", "lower_trunk"))
    c7_y = my + anthropometry.trunk_length("c7_to_midh", H, sex, k)
    p["midh_in_torso"] = (mx, my, 0.0)
    p["suprasternale"] = (mx + 0.030 * H, my + trunk, 0.0)
    p["xiphoid"] = (mx + 0.042 * H, my + trunk - seg["upper_trunk"].length, 0.0)
    p["c7"] = (mx - 0.045 * H, c7_y, 0.0)
    p["vertex"] = (mx - 0.005 * H, c7_y + seg["head"].length, 0.0)
    sjc_y = my + anthropometry.trunk_length("sjc_to_midh", H, sex, k)
    p["shoulder"] = (mx - 0.020 * H, sjc_y, 0.094 * H)
    # Limbs: each joint centre straight below the previous one in the default pose.
    p["knee"] = (0.0, -g.thigh, 0.0)
    p["ankle"] = (0.0, -g.shank, 0.0)
    p["calcn_in_talus"] = _scaled(CALCN_IN_TALUS_REF, s)
    p["toes_in_calcn"] = _scaled(TOES_IN_CALCN_REF, s)
    p["elbow"] = (0.0, -g.upper_arm, 0.0)
    f = g.forearm / float(np.linalg.norm(WRIST_IN_ULNA_REF))
    p["radius_in_ulna"] = _scaled(RADIUS_IN_ULNA_REF, f)
    p["wrist_in_ulna"] = _scaled(WRIST_IN_ULNA_REF, f)
    p["wrist_in_radius"] = tuple(np.subtract(p["wrist_in_ulna"], p["radius_in_ulna"]))
    g.pelvis_height = ankle_height + g.shank + g.thigh - p["hip"][1]
    return g


# -- Mass properties ------------------------------------------------------------------------------
def body_mass_properties(g: Geometry) -> dict[str, tuple[float, np.ndarray, np.ndarray]]:
    """{body: (mass kg, com m in body frame, inertia kg m^2 about com)} for one side plus trunk.

    Lumping rules: pelvis = de Leva lower trunk; torso = head + upper + middle trunk (their centres
    of mass on the trunk's vertical line through mid-hip, the head's 0.005 H before the vertex);
    foot split talus:calcn:toes by Rajagopal's masses with the calcn's centre of mass placed so the
    three together have de Leva's foot centre of mass; ulna and radius each carry half the forearm
    with the forearm's centre of mass and radii (Rajagopal gives them equal masses).
    """
    seg, p = g.segments, g.points
    out = {}

    def line(name, top_y, x=0.0, long_axis=1):  # a segment hanging down from (x, top_y)
        s = seg[name]
        return s.mass, np.array([x, top_y - s.com * s.length, 0.0]), principal_inertia(
            s.mass, s.radii, long_axis)

    lt = seg["lower_trunk"]
    midh = np.array(p["midh"])
    out["pelvis"] = (lt.mass, midh + [0.0, (1.0 - lt.com) * lt.length, 0.0],
                     principal_inertia(lt.mass, lt.radii))
    mx = p["midh_in_torso"][0]
    out["torso"] = lump([
        line("head", p["vertex"][1], x=p["vertex"][0] + 0.005 * g.H),
        line("upper_trunk", p["suprasternale"][1], x=mx),
        line("middle_trunk", p["xiphoid"][1], x=mx),
    ])
    out["femur"] = line("thigh", 0.0)
    out["tibia"] = line("shank", 0.0)
    foot = seg["foot"]
    s = g.s
    calcn_in_talus = np.array(p["calcn_in_talus"])
    talus_com_c = np.array(TALUS_COM_REF) * s - calcn_in_talus      # in calcn frame
    toes_com_c = np.array(p["toes_in_calcn"]) + np.array(TOES_COM_REF) * s
    foot_com_c = np.array([g.heel_x + foot.com * foot.length, FOOT_COM_Y_REF * s, 0.0])
    m = {k: FOOT_SPLIT[k] * foot.mass for k in FOOT_SPLIT}
    calcn_com = (foot.mass * foot_com_c - m["talus"] * talus_com_c
                 - m["toes"] * toes_com_c) / m["calcn"]
    for part, com in (("talus", np.array(TALUS_COM_REF) * s), ("calcn", calcn_com),
                      ("toes", np.array(TOES_COM_REF) * s)):
        out[part] = (m[part], com, principal_inertia(m[part], foot.radii, long_axis=0))
    fa = seg["forearm"]
    com_u = fa.com * np.array(p["wrist_in_ulna"])
    half = 0.5 * fa.mass
    out["ulna"] = (half, com_u, principal_inertia(half, fa.radii))
    out["radius"] = (half, com_u - np.array(p["radius_in_ulna"]), principal_inertia(half, fa.radii))
    out["humerus"] = line("upper_arm", 0.0)
    out["hand"] = line("hand", 0.0)
    return out


# -- Building -------------------------------------------------------------------------------------
def _mirror_vec(v, side: str):
    return (v[0], v[1], -v[2]) if side == "l" else tuple(v)


def _mirror_axis(a, side: str):
    return (-a[0], -a[1], a[2]) if side == "l" else tuple(a)


def _complete_basis(axes: list) -> list:
    """Extend 1-2 rotation axes to three independent ones (unused CustomJoint rotations)."""
    axes = [np.asarray(a, float) / np.linalg.norm(a) for a in axes]
    while len(axes) < 3:
        if len(axes) == 2:
            axes.append(np.cross(axes[0], axes[1]))
        else:
            trial = np.eye(3)[int(np.argmin(np.abs(axes[0])))]
            axes.append(np.cross(axes[0], trial))
        axes[-1] /= np.linalg.norm(axes[-1])
    return axes


def _custom_joint(name, parent, child, location, coords) -> opensim.CustomJoint:
    """coords: [(coordinate name or None, axis)] for rotation1..3 then translation1..3."""
    st = opensim.SpatialTransform()
    for i, (cname, axis) in enumerate(coords):
        ta = st.updTransformAxis(i)
        ta.setAxis(opensim.Vec3(*[float(x) for x in axis]))
        if cname:
            ta.setCoordinateNames(opensim.ArrayStr(cname, 1))
            ta.set_function(opensim.LinearFunction(1.0, 0.0))
        else:
            ta.set_function(opensim.Constant(0.0))
    zero = opensim.Vec3(0.0)
    return opensim.CustomJoint(name, parent, opensim.Vec3(*location), zero, child, zero, zero, st)


def build_model(height_m: float, mass_kg: float, sex: str, name: str | None = None,
                ) -> opensim.Model:
    """The built-in model for a subject: stature (m), body mass (kg), sex ('F'/'M'/'female'/
    'male'). Returns a finalized, connected opensim.Model (call initSystem() to simulate) with
    20 bodies, the 37 COORDINATE_NAMES, 48 markers, 12 contact spheres and one CoordinateActuator
    per coordinate. Deterministic. Raises ModelError for implausible input."""
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ModelError(f"model name {name!r} must be a non-empty string")
    sex_key = anthropometry.validate_subject(height_m, mass_kg, sex)
    height_m, mass_kg = float(height_m), float(mass_kg)
    g = model_geometry(height_m, mass_kg, sex_key)
    mass_props = body_mass_properties(g)

    model = opensim.Model()
    model.setName(name or f"builtin_{sex_key}_{height_m:.2f}m_{mass_kg:.1f}kg")
    model.setGravity(opensim.Vec3(0.0, -GRAVITY, 0.0))
    bodies = {}
    for body_name in BODY_NAMES:
        base = body_name[:-2] if body_name[-2:] in ("_r", "_l") else body_name
        mass, com, inertia = mass_props[base]
        side = body_name[-1] if body_name != base else ""
        com = _mirror_vec(com, side)
        sign = -1.0 if side == "l" else 1.0            # mirroring flips products with z
        inertia = opensim.Inertia(*[float(v) for v in (
            inertia[0, 0], inertia[1, 1], inertia[2, 2], inertia[0, 1], sign * inertia[0, 2],
            sign * inertia[1, 2])])
        body = opensim.Body(body_name, float(mass), opensim.Vec3(*[float(c) for c in com]), inertia)
        model.addBody(body)
        bodies[body_name] = body

    axes = [(0, 0, 1), (1, 0, 0), (0, 1, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    joint = _custom_joint("ground_pelvis", model.getGround(), bodies["pelvis"], (0, 0, 0),
                          list(zip(PELVIS_COORDINATES, axes)))
    model.addJoint(joint)
    for k, ((lo, hi), cname) in enumerate(zip(PELVIS_RANGES, PELVIS_COORDINATES)):
        coord = joint.upd_coordinates(k)
        to_si = math.radians if k < 3 else float
        coord.setRangeMin(to_si(lo))
        coord.setRangeMax(to_si(hi))
        coord.setDefaultValue(g.pelvis_height if cname == "pelvis_ty" else 0.0)

    for spec, side in _ordered_joints():
        names = [_sided(c[0], side) for c in spec.coordinates]
        axes = _complete_basis([_mirror_axis(c[1], side) for c in spec.coordinates])
        coords = list(zip(names + [None] * (3 - len(names)), axes))
        coords += [(None, (1, 0, 0)), (None, (0, 1, 0)), (None, (0, 0, 1))]
        midline = spec.parent in ("pelvis", "torso")
        parent = bodies[spec.parent if midline else _sided(spec.parent, side)]
        location = _mirror_vec(g.points[spec.location], side)
        joint = _custom_joint(_sided(spec.name, side), parent, bodies[_sided(spec.child, side)],
                              location, coords)
        model.addJoint(joint)
        for k, (_, _, (lo, hi)) in enumerate(spec.coordinates):
            coord = joint.upd_coordinates(k)
            coord.setRangeMin(math.radians(lo))
            coord.setRangeMax(math.radians(hi))
            coord.setDefaultValue(0.0)
            coord.setDefaultClamped(True)

    for marker_name, (body_name, location) in marker_locations(g).items():
        model.addMarker(opensim.Marker(marker_name, bodies[body_name], opensim.Vec3(*location)))
    contact.add_foot_contact(model, foot_scale=(g.s, g.s, g.s))
    _add_actuators(model, height_m, mass_kg)
    model.finalizeFromProperties()
    model.finalizeConnections()
    return model


def torque_scale(coordinate: str, height_m: float, mass_kg: float) -> float:
    """Optimal force of a coordinate's actuator: N m for joint rotations; for the pelvis
    residuals the quality-gate thresholds, 0.05 body weight (N) and 0.1 body weight x stature
    (N m), so a residual control of magnitude 1 sits exactly on the gate."""
    bw = mass_kg * GRAVITY
    if coordinate in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
        return 0.05 * bw
    if coordinate.startswith("pelvis_"):
        return 0.1 * bw * height_m
    key = coordinate.split("_")[0]          # hip, knee, ..., lumbar, arm, elbow, pro, wrist
    if key not in TORQUE_SCALE:
        raise ModelError(f"no torque scale for coordinate {coordinate!r}")
    return TORQUE_SCALE[key] * bw * height_m


def actuator_name(coordinate: str) -> str:
    """`residual_<coord>` for the six pelvis coordinates, `tau_<coord>` for the others."""
    return f"residual_{coordinate}" if coordinate in PELVIS_COORDINATES else f"tau_{coordinate}"


def _add_actuators(model: opensim.Model, height_m: float, mass_kg: float) -> None:
    for coordinate in COORDINATE_NAMES:
        actuator = opensim.CoordinateActuator(coordinate)
        actuator.setName(actuator_name(coordinate))
        actuator.setOptimalForce(torque_scale(coordinate, height_m, mass_kg))
        model.addForce(actuator)


def write_model(model: opensim.Model, path: str | os.PathLike) -> Path:
    """Write `model` as .osim at `path` atomically (temp name in the same folder, then rename);
    creates missing folders. Returns the path."""
    path = Path(path)
    tmp = path.with_name(f"_{path.stem}.{os.getpid()}.tmp.osim")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not model.printToXML(str(tmp)):
            raise ModelError("OpenSim could not write the model", file=path)
        os.replace(tmp, path)
    except OSError as error:
        raise ModelError(f"cannot write the model: {error.strerror or error}", file=path,
                         hint="check that the folder is writable") from error
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
