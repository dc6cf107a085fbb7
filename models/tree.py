"""Parse the exported tree (osim/export_tree.py) into a flat list of elementary steps.

Plain Python + NumPy, no array backend: the result holds only constants, and the algorithms in
`models/rigid_body.py` walk it with whatever backend (torch now, CasADi later) they are given.

Each OpenSim joint X_FM(q) = Translate(sum f_k t_k) * Rot(r1, f1) * Rot(r2, f2) * Rot(r3, f3)
becomes, from the parent body's frame:
    fixed(X_PF) -> prismatic steps (one per non-constant translation; constant ones are folded
    into a fixed step) -> revolute steps r1, r2, r3 about successively rotated axes (constants
    folded) -> fixed(inverse X_BM) = the child body's frame.
Each prismatic/revolute step has a *virtual dof* theta = f(q_j) of one coordinate; generalized
forces follow by the chain rule tau_j = sum_k f_k'(q_j) tau_k (virtual work).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import ModelError


@dataclass(frozen=True)
class Step:
    """One elementary motion from frame `parent` to a new frame (index = position in list + 1).

    kind 'fixed': constant rotation R (child axes in parent) and translation p (parent frame).
    kind 'rev'/'pri': rotation about / translation along unit `axis` (parent frame == child
    frame axis) by the virtual dof `dof`; `body` is the body whose subtree the step moves.
    """
    kind: str
    parent: int
    R: np.ndarray | None = None
    p: np.ndarray | None = None
    axis: np.ndarray | None = None
    dof: int = -1
    body: int = -1
    hdot_extra: tuple = ()   # (dof, sign) pairs: see _simbody_hdot_extras


@dataclass(frozen=True)
class VirtualDof:
    """theta = scale * f(q[coordinate]); `function` is the exported function description."""
    coordinate: int
    function: dict


@dataclass
class Tree:
    """Constants of a multibody tree in a backend-agnostic form. Frame 0 is ground."""
    coordinate_names: list[str]
    body_names: list[str]
    steps: list[Step]
    dofs: list[VirtualDof]
    body_frame: list[int]                 # frame index of each body
    body_parent: list[int]                # parent body index, -1 for ground
    mass: np.ndarray                      # (B,) kg
    com: np.ndarray                       # (B, 3) m, body frame
    inertia: np.ndarray                   # (B, 3, 3) kg m^2 about COM, body frame
    gravity: np.ndarray                   # (3,) m/s^2 in ground
    marker_names: list[str]
    marker_body: list[int]                # body index of each marker, -1 for ground
    marker_location: np.ndarray           # (M, 3) m in body frame
    contact_names: list[str] = field(default_factory=list)
    contact_body: list[int] = field(default_factory=list)
    contact_location: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    contact_radius: np.ndarray = field(default_factory=lambda: np.zeros(0))
    coordinate_ranges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    description: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)   # derived constants, filled lazily


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _constant_value(func: dict) -> float | None:
    return func["scale"] * func["value"] if func["kind"] == "constant" else None


def _unit(axis, where: str) -> np.ndarray:
    a = np.asarray(axis, dtype=float)
    norm = np.linalg.norm(a)
    if norm < 1e-12:
        raise ModelError(f"zero-length transform axis in {where}")
    return a / norm


def _simbody_hdot_extras(joint: dict, rotations: list[dict], first_dof: int) -> dict[int, tuple]:
    """Simbody's FunctionBased mobilizer (OpenSim's CustomJoint) computes the time derivative
    of its rotation-axis matrix W = [a1, R1 a2, R2 a3] with the angular velocity of the *whole*
    joint driven by the joint's first coordinate (for the 2nd axis) and by all but its third
    coordinate (for the 3rd axis), instead of the angular velocity of the previous rotations
    alone. The two agree when rotation k is a linear function of coordinate k (hips, pelvis),
    and differ slightly otherwise (the knee's polynomial rotations).

    Returns, per rotation slot, (dof, sign) pairs: the angular velocity Simbody uses minus the
    exact one, as virtual dofs of this joint's rotations. The dynamics add
    (sum sign * axis_d * thetadot_d) x axis_k * thetadot_k to reproduce OpenSim exactly.
    """
    if joint["type"] != "CustomJoint":
        return {}
    coords = joint["coordinates"]
    moving, dof = [], first_dof  # (slot, dof, coordinate name) of non-constant rotations
    for slot, ax in enumerate(rotations):
        if _constant_value(ax["function"]) is None:
            moving.append((slot, dof, ax["coordinate"]))
            dof += 1
    extras = {}
    for slot in (1, 2):
        if slot == 1:
            simbody = {d for _, d, c in moving if len(coords) == 1 or c == coords[0]}
        else:
            simbody = {d for _, d, c in moving if len(coords) <= 2 or c != coords[2]}
        exact = {d for s, d, _ in moving if s < slot}
        extra = tuple([(d, 1.0) for d in sorted(simbody - exact)]
                      + [(d, -1.0) for d in sorted(exact - simbody)])
        if extra:
            extras[slot] = extra
    return extras


def build_tree(desc: dict) -> Tree:
    """Flatten an exported description into elementary steps (see module docstring)."""
    coord_names = [c["name"] for c in desc["coordinates"]]
    coord_index = {n: i for i, n in enumerate(coord_names)}
    body_names = [b["name"] for b in desc["bodies"]]
    body_index = {n: i for i, n in enumerate(body_names)}

    def body_of(name: str, where: str) -> int:
        if name == "ground":
            return -1
        if name not in body_index:
            raise ModelError(f"{where} refers to unknown body {name!r}")
        return body_index[name]

    steps: list[Step] = []
    dofs: list[VirtualDof] = []
    body_frame = [None] * len(body_names)
    body_parent = [None] * len(body_names)

    def frame_of(b: int) -> int:
        return 0 if b < 0 else body_frame[b]

    def add_fixed(parent: int, rot: np.ndarray, pos: np.ndarray) -> int:
        # Fold into the previous fixed step when it is the parent (keeps the chain short).
        if (parent > 0 and parent == len(steps) and steps[parent - 1].kind == "fixed"
                and parent not in body_frame):
            prev = steps[parent - 1]
            steps[parent - 1] = Step("fixed", prev.parent, prev.R @ rot, prev.p + prev.R @ pos)
            return parent
        if np.allclose(rot, np.eye(3), atol=0, rtol=0) and not np.any(pos):
            return parent
        steps.append(Step("fixed", parent, rot, pos))
        return len(steps)

    pending = list(desc["joints"])
    while pending:  # topological order: a joint whose parent body is placed
        ready = [j for j in pending if j["parent_body"] == "ground"
                 or body_frame[body_of(j["parent_body"], j["name"])] is not None]
        if not ready:
            raise ModelError("joints do not form a tree rooted at ground: "
                             + ", ".join(j["name"] for j in pending))
        for joint in ready:
            pending.remove(joint)
            where = f"joint {joint['name']}"
            parent, child = body_of(joint["parent_body"], where), body_of(joint["child_body"], where)
            if child < 0 or body_frame[child] is not None:
                raise ModelError(f"{where}: child body {joint['child_body']} placed twice")
            po = joint["parent_offset"]
            frame = add_fixed(frame_of(parent), np.array(po["R"]), np.array(po["p"]))
            rotations = [a for a in joint["axes"] if a["type"] == "rotation"]
            translations = [a for a in joint["axes"] if a["type"] == "translation"]
            const_t = np.zeros(3)
            moving: list[tuple[str, np.ndarray, dict, str]] = []
            for ax in translations:
                axis = _unit(ax["axis"], where)
                c = _constant_value(ax["function"])
                if c is not None:
                    const_t += c * axis
                else:
                    moving.append(("pri", axis, ax["function"], ax["coordinate"]))
            frame = add_fixed(frame, np.eye(3), const_t)
            for kind, axis, func, coord in moving:
                dofs.append(VirtualDof(coord_index[coord], func))
                steps.append(Step(kind, frame, axis=axis, dof=len(dofs) - 1, body=child))
                frame = len(steps)
            extras = _simbody_hdot_extras(joint, rotations, len(dofs))
            for slot, ax in enumerate(rotations):
                axis = _unit(ax["axis"], where)
                c = _constant_value(ax["function"])
                if c is not None:
                    frame = add_fixed(frame, _rotation(axis, c), np.zeros(3))
                    continue
                dofs.append(VirtualDof(coord_index[ax["coordinate"]], ax["function"]))
                steps.append(Step("rev", frame, axis=axis, dof=len(dofs) - 1, body=child,
                                  hdot_extra=extras.get(slot, ())))
                frame = len(steps)
            co = joint["child_offset"]
            r_bm, p_bm = np.array(co["R"]), np.array(co["p"])
            # New frame for the body even when the offset is identity, so the body owns it.
            steps.append(Step("fixed", frame, r_bm.T, -r_bm.T @ p_bm))
            body_frame[child] = len(steps)
            body_parent[child] = parent

    missing = [n for n, f in zip(body_names, body_frame, strict=True) if f is None]
    if missing:
        raise ModelError(f"bodies without a joint: {missing}")

    bodies = desc["bodies"]
    markers = desc.get("markers", [])
    spheres = desc.get("contact_spheres", [])
    return Tree(
        coordinate_names=coord_names, body_names=body_names, steps=steps, dofs=dofs,
        body_frame=body_frame, body_parent=body_parent,
        mass=np.array([b["mass"] for b in bodies], dtype=float),
        com=np.array([b["com"] for b in bodies], dtype=float).reshape(-1, 3),
        inertia=np.array([b["inertia"] for b in bodies], dtype=float).reshape(-1, 3, 3),
        gravity=np.array(desc["gravity"], dtype=float),
        marker_names=[m["name"] for m in markers],
        marker_body=[body_of(m["body"], f"marker {m['name']}") for m in markers],
        marker_location=np.array([m["location"] for m in markers], dtype=float).reshape(-1, 3),
        contact_names=[s["name"] for s in spheres],
        contact_body=[body_of(s["body"], f"contact {s['name']}") for s in spheres],
        contact_location=np.array([s["location"] for s in spheres], dtype=float).reshape(-1, 3),
        contact_radius=np.array([s["radius"] for s in spheres], dtype=float),
        coordinate_ranges=np.array([c["range"] for c in desc["coordinates"]], dtype=float),
        description=desc)


def random_states(desc: dict, n: int, seed: int = 0):
    """(q, qd, qdd) arrays (n, N) for tests and benchmarks: q uniform within the coordinate
    ranges, qd and qdd normal (sd 2 and 5). Rotations are capped at +-1.4 rad so that no 3-axis
    joint sits at gimbal lock (middle angle +-90 deg), where the mass matrix is singular in
    OpenSim too; translations at +-3 m."""
    rng = np.random.default_rng(seed)
    cap = np.array([3.0 if c["motion_type"] == "translational" else 1.4
                    for c in desc["coordinates"]])
    lo = np.maximum([c["range"][0] for c in desc["coordinates"]], -cap)
    hi = np.minimum([c["range"][1] for c in desc["coordinates"]], cap)
    q = rng.uniform(lo, hi, size=(n, len(lo)))
    return q, rng.normal(0, 2.0, size=q.shape), rng.normal(0, 5.0, size=q.shape)
