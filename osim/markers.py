"""The built-in model's marker set, as data: name, body, location from segment dimensions.

Names follow Vicon Plug-in Gait (plus medial knee, ankle and elbow markers, MT1/MT5 and VRTX) so
lab data and SMPL virtual markers map onto them. Locations are functions of the model's
`Geometry` (osim/builtin_model.py) and are given for the right side; the left side mirrors z.
Bony-landmark markers sit on the bone surface; RTHI/RTIB/RUPA (and mirrors) are soft-tissue
"wand" markers and are excluded from the bony-landmark error metric via `BONY_LANDMARKS`.

Default pose is the anatomical position (palms forward, forearm supinated: Rajagopal's pro_sup=0),
so the radial styloid is lateral and the dorsum of the hand faces backwards.
Axes: x forward, y up, z right (lateral on the right side).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from osim.builtin_model import Geometry

Vec = tuple[float, float, float]


@dataclass(frozen=True)
class MarkerSpec:
    """A marker: `location(g)` is its position (m) in `body`'s frame for geometry `g`.
    bony: on a palpable bony landmark. mirror: also create the left twin (R->L, z->-z)."""

    name: str
    body: str
    location: Callable[[Geometry], Vec]
    bony: bool = True
    mirror: bool = True


def _add(p: Vec, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> Vec:
    return (p[0] + dx, p[1] + dy, p[2] + dz)


#: Right-side and midline markers. Offsets are fractions of stature H, of a segment length, or
#: of the foot scale s (1 = the Moco example subject's foot, see osim/contact.py).
RIGHT_AND_MIDLINE = (
    # Pelvis: origin at the mid-point of the ASIS.
    MarkerSpec("RASI", "pelvis", lambda g: (0.0, 0.0, 0.070 * g.H)),
    MarkerSpec("RPSI", "pelvis", lambda g: (-0.095 * g.H, 0.010 * g.H, 0.025 * g.H)),
    MarkerSpec("SACR", "pelvis", lambda g: (-0.100 * g.H, 0.006 * g.H, 0.0), mirror=False),
    # Thigh and shank: origins at the hip and knee joint centres.
    MarkerSpec("RTHI", "femur_r", lambda g: (0.0, -0.5 * g.thigh, 0.043 * g.H), bony=False),
    MarkerSpec("RKNE", "femur_r", lambda g: (0.0, -g.thigh, 0.5 * g.knee_width)),
    MarkerSpec("RKNM", "femur_r", lambda g: (0.0, -g.thigh, -0.5 * g.knee_width)),
    MarkerSpec("RTIB", "tibia_r", lambda g: (0.0, -0.5 * g.shank, 0.032 * g.H), bony=False),
    # Lateral malleolus: lower and more posterior than the medial one.
    MarkerSpec("RANK", "tibia_r",
               lambda g: (-0.004 * g.H, -g.shank + 0.0035 * g.H, 0.5 * g.ankle_width)),
    MarkerSpec("RMMA", "tibia_r",
               lambda g: (0.004 * g.H, -g.shank + 0.008 * g.H, -0.5 * g.ankle_width)),
    # Foot: heights above the sole; the first metatarsal head is more distal than the fifth.
    MarkerSpec("RHEE", "calcn_r", lambda g: (g.heel_x, g.sole_y + 0.040 * g.s, -0.010 * g.s)),
    MarkerSpec("RMT1", "calcn_r", lambda g: (0.195 * g.s, g.sole_y + 0.025 * g.s, -0.045 * g.s)),
    MarkerSpec("RMT5", "calcn_r", lambda g: (0.165 * g.s, g.sole_y + 0.020 * g.s, 0.055 * g.s)),
    MarkerSpec("RTOE", "toes_r", lambda g: (g.toe_tip_x, g.sole_y + 0.015 * g.s, -0.020 * g.s)),
    # Torso: origin at the lumbosacral (back) joint.
    MarkerSpec("C7", "torso", lambda g: g.c7, mirror=False),
    MarkerSpec("T10", "torso", lambda g: (g.c7[0] - 0.005 * g.H, g.xiphoid[1], 0.0),
               mirror=False),
    MarkerSpec("CLAV", "torso", lambda g: g.suprasternale, mirror=False),
    MarkerSpec("STRN", "torso", lambda g: g.xiphoid, mirror=False),
    MarkerSpec("RSHO", "torso", lambda g: _add(g.shoulder, dy=0.023 * g.H)),
    MarkerSpec("RFHD", "torso", lambda g: _add(g.vertex, 0.045 * g.H, -0.045 * g.H, 0.030 * g.H)),
    MarkerSpec("RBHD", "torso", lambda g: _add(g.vertex, -0.060 * g.H, -0.045 * g.H, 0.025 * g.H)),
    MarkerSpec("VRTX", "torso", lambda g: g.vertex, mirror=False),
    # Arm: humerus origin at the shoulder joint centre, ulna at the elbow, hand at the wrist.
    MarkerSpec("RUPA", "humerus_r", lambda g: (0.0, -0.5 * g.upper_arm, 0.026 * g.H), bony=False),
    MarkerSpec("RELB", "humerus_r", lambda g: (0.0, -g.upper_arm, 0.5 * g.elbow_width)),
    MarkerSpec("RELM", "humerus_r", lambda g: (0.0, -g.upper_arm, -0.5 * g.elbow_width)),
    MarkerSpec("RWRA", "radius_r", lambda g: _add(g.wrist_in_radius, dz=0.5 * g.wrist_width)),
    MarkerSpec("RWRB", "ulna_r", lambda g: _add(g.wrist_in_ulna, dz=-0.5 * g.wrist_width)),
    MarkerSpec("RFIN", "hand_r", lambda g: (-0.005 * g.H, -g.hand, 0.0)),
)


def _mirror(spec: MarkerSpec) -> MarkerSpec:
    body = spec.body[:-2] + "_l" if spec.body.endswith("_r") else spec.body

    def location(g, f=spec.location):
        x, y, z = f(g)
        return (x, y, -z)

    return MarkerSpec("L" + spec.name[1:], body, location, spec.bony, mirror=False)


def _with_mirrors(specs) -> tuple[MarkerSpec, ...]:
    out = []
    for spec in specs:
        out.append(spec)
        if spec.mirror:
            out.append(_mirror(spec))
    return tuple(out)


#: Every marker of the built-in model, right twin before left, in model order.
MARKERS: tuple[MarkerSpec, ...] = _with_mirrors(RIGHT_AND_MIDLINE)
MARKER_NAMES: tuple[str, ...] = tuple(m.name for m in MARKERS)
MARKER_BODIES: dict[str, str] = {m.name: m.body for m in MARKERS}
#: Markers on palpable bony landmarks, for the bony-landmark error metric.
BONY_LANDMARKS: tuple[str, ...] = tuple(m.name for m in MARKERS if m.bony)


def marker_locations(geometry: Geometry) -> dict[str, tuple[str, Vec]]:
    """{marker name: (body name, location in the body frame, m)} for a model geometry."""
    return {m.name: (m.body, tuple(float(v) for v in m.location(geometry))) for m in MARKERS}
