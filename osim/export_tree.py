"""Export an OpenSim model's multibody tree as a plain, JSON-able description for `models/`.

Every joint becomes a list of elementary *transform axes* in OpenSim's SpatialTransform
convention, so `models/` needs only one joint kind:

    X_FM(q) = Translate(sum_k f_k(q) t_k) * Rot(r_1, f_1(q)) * Rot(r_2, f_2(q)) * Rot(r_3, f_3(q))

i.e. the translations are along fixed axes of the parent offset frame F, then the three rotations
are about successively rotated (body-fixed) axes. Pin (about z), Slider (along x), Universal
(x then y), Planar (rz, tx, ty) and Weld map onto this exactly; for all of them the generalized
speed u equals qdot. Each axis has a function of at most one coordinate (Linear, Constant,
Polynomial, SimmSpline/NaturalCubicSpline as piecewise cubics, all possibly wrapped in a
MultiplierFunction). Coordinate `clamped`/`locked` flags are recorded but not enforced.

Ball and Free joints (quaternion/Euler mobilizers whose speeds are angular velocities, not qdot)
and constraints other than CoordinateCouplerConstraint are rejected with a ModelError.
Couplers are exported as data; the tree treats all coordinates as independent (as OpenSim's
InverseDynamicsSolver does).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import opensim

from pipeline.errors import ModelError

FORMAT_VERSION = 1


def _vec3(v) -> list[float]:
    return [float(v.get(i)) for i in range(3)]


def _transform(x) -> dict:
    """SimTK Transform -> {'R': 3x3 rows, 'p': [3]} (R maps child-frame vectors to parent)."""
    rot = x.R()
    return {"R": [[float(rot.get(i, j)) for j in range(3)] for i in range(3)], "p": _vec3(x.p())}


def _export_function(func, coord_name: str | None, where: str) -> dict:
    """One OpenSim Function of (at most) one coordinate -> a plain description."""
    kind = func.getConcreteClassName()
    if kind == "MultiplierFunction":
        mf = opensim.MultiplierFunction.safeDownCast(func)
        inner = _export_function(mf.getFunction(), coord_name, where)
        inner["scale"] *= float(mf.getScale())
        return inner
    if kind == "Constant":
        return {"kind": "constant", "value": float(opensim.Constant.safeDownCast(func).getValue()),
                "scale": 1.0}
    if kind == "LinearFunction":
        lf = opensim.LinearFunction.safeDownCast(func)
        return {"kind": "linear", "slope": float(lf.getSlope()),
                "intercept": float(lf.getIntercept()), "scale": 1.0}
    if kind == "PolynomialFunction":
        pf = opensim.PolynomialFunction.safeDownCast(func)
        coefs = pf.getCoefficients()  # highest power first
        return {"kind": "polynomial", "coefficients": [float(coefs.get(i))
                                                       for i in range(coefs.size())],
                "scale": 1.0}
    if kind in ("SimmSpline", "NaturalCubicSpline"):
        return _export_piecewise_cubic(func, kind, where)
    raise ModelError(f"transform function {kind} in {where} is not supported",
                     hint="use Linear, Constant, Polynomial, SimmSpline or NaturalCubicSpline")


def _export_piecewise_cubic(func, kind: str, where: str) -> dict:
    """A cubic spline as knots plus per-interval coefficients, read from OpenSim's own
    evaluations so the result matches whatever coefficient rule the spline class uses.

    On [x_i, x_i+1]: y = c0 + c1 h + c2 h^2 + c3 h^3 with h = x - x_i. Outside the knots OpenSim's
    splines extrapolate linearly with the end slope (checked against OpenSim in the tests).
    """
    spline = getattr(opensim, kind).safeDownCast(func)
    n = spline.getSize()
    x = np.array([spline.getX(i) for i in range(n)], dtype=float)
    if n < 2:
        raise ModelError(f"{kind} in {where} has fewer than 2 knots")

    def value(xv: float, order: int = 0) -> float:
        arg = opensim.Vector(1, float(xv))
        if order == 0:
            return float(func.calcValue(arg))
        deriv = opensim.StdVectorInt()
        for _ in range(order):
            deriv.append(0)
        return float(func.calcDerivative(deriv, arg))

    coefs = []
    for i in range(n - 1):
        h = x[i + 1] - x[i]
        # Evaluate just inside the interval's left end so the interval's own cubic is used.
        c0, c1, c2 = value(x[i]), value(x[i], 1), value(x[i], 2) / 2.0
        c3 = (value(x[i + 1]) - c0 - c1 * h - c2 * h * h) / h ** 3
        coefs.append([c0, c1, c2, c3])
    return {"kind": "piecewise_cubic", "x": x.tolist(), "coefficients": coefs,
            "slope_left": value(x[0], 1), "slope_right": value(x[-1], 1),
            "y_left": value(x[0]), "y_right": value(x[-1]), "scale": 1.0}


def _linear(coord: str) -> tuple[str, dict]:
    return coord, {"kind": "linear", "slope": 1.0, "intercept": 0.0, "scale": 1.0}


def _axes_for_joint(joint, coord_names: list[str]) -> list[dict]:
    """The joint as OpenSim SpatialTransform axes (rotations first, then translations)."""
    kind = joint.getConcreteClassName()
    where = f"joint {joint.getName()}"
    axes: list[dict] = []

    def add(role: str, axis, coord: str | None, func: dict):
        axes.append({"type": role, "axis": [float(a) for a in axis], "coordinate": coord,
                     "function": func})

    if kind == "WeldJoint":
        return axes
    if kind == "PinJoint":
        add("rotation", (0, 0, 1), *_linear(coord_names[0]))
    elif kind == "SliderJoint":
        add("translation", (1, 0, 0), *_linear(coord_names[0]))
    elif kind == "UniversalJoint":
        add("rotation", (1, 0, 0), *_linear(coord_names[0]))
        add("rotation", (0, 1, 0), *_linear(coord_names[1]))
    elif kind == "PlanarJoint":
        add("rotation", (0, 0, 1), *_linear(coord_names[0]))
        add("translation", (1, 0, 0), *_linear(coord_names[1]))
        add("translation", (0, 1, 0), *_linear(coord_names[2]))
    elif kind == "CustomJoint":
        st = opensim.CustomJoint.safeDownCast(joint).getSpatialTransform()
        for i in range(6):
            ta = st.getTransformAxis(i)
            arr = ta.getCoordinateNamesInArray()
            names = [arr.get(k) for k in range(arr.getSize())]
            if len(names) > 1:
                raise ModelError(f"{where} axis {i} depends on {len(names)} coordinates",
                                 hint="only functions of one coordinate are supported")
            coord = names[0] if names else None
            func = _export_function(ta.get_function(), coord, f"{where} axis {i}")
            if coord is None and func["kind"] != "constant":
                raise ModelError(f"{where} axis {i} has a {func['kind']} function of nothing")
            add("rotation" if i < 3 else "translation", _vec3(ta.getAxis()), coord, func)
    else:
        raise ModelError(f"{where} is a {kind}, which models/ does not support",
                         hint="Ball/Free joints use angular-velocity speeds; replace them with a "
                              "CustomJoint (3 rotations + 3 translations) or a supported joint")
    return axes


def _mobility_indices(model, state) -> list[int]:
    """Simbody's u-slot of each coordinate (coordinate-set order), found by setting its speed."""
    coords = model.getCoordinateSet()
    out = []
    for i in range(coords.getSize()):
        state.updU().setToZero()
        coords.get(i).setSpeedValue(state, 1.0)
        u = state.getU()
        out.append(next(k for k in range(u.size()) if u.get(k) != 0.0))
    state.updU().setToZero()
    return out


def _load(model_or_path):
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if not path.exists():
            raise ModelError("model file not found", file=path)
        model = opensim.Model(str(path))
    else:
        model = model_or_path
    return model, model.initSystem()


def export_tree(model_or_path) -> dict:
    """The multibody tree of an OpenSim model (or .osim path) as a JSON-able dict.

    Units: kg, m, kg*m^2, m/s^2. Body inertia is about the COM, in the body frame.
    """
    opensim.Logger.setLevelString("error")
    model, state = _load(model_or_path)
    couplers = _coordinate_couplers(model)

    bodies = []
    for i in range(model.getBodySet().getSize()):
        body = model.getBodySet().get(i)
        inertia = body.getInertia()
        moments, products = inertia.getMoments(), inertia.getProducts()
        ixx, iyy, izz = _vec3(moments)
        ixy, ixz, iyz = _vec3(products)
        bodies.append({"name": body.getName(), "mass": float(body.getMass()),
                       "com": _vec3(body.getMassCenter()),
                       "inertia": [[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]]})

    coord_set = model.getCoordinateSet()
    mobility = _mobility_indices(model, state)
    coordinates = []
    for i in range(coord_set.getSize()):
        c = coord_set.get(i)
        coordinates.append({
            "name": c.getName(), "joint": c.getJoint().getName(),
            "motion_type": ["", "rotational", "translational", "coupled"][int(c.getMotionType())],
            "range": [float(c.getRangeMin()), float(c.getRangeMax())],
            "default": float(c.getDefaultValue()), "clamped": bool(c.getDefaultClamped()),
            "locked": bool(c.getDefaultLocked()), "mobility_index": mobility[i]})

    joints = []
    for i in range(model.getJointSet().getSize()):
        joint = model.getJointSet().get(i)
        names = [joint.get_coordinates(k).getName() for k in range(joint.numCoordinates())]
        parent, child = joint.getParentFrame(), joint.getChildFrame()
        joints.append({
            "name": joint.getName(), "type": joint.getConcreteClassName(),
            "parent_body": parent.findBaseFrame().getName(),
            "parent_offset": _transform(parent.findTransformInBaseFrame()),
            "child_body": child.findBaseFrame().getName(),
            "child_offset": _transform(child.findTransformInBaseFrame()),
            "coordinates": names, "axes": _axes_for_joint(joint, names)})

    markers = []
    for i in range(model.getMarkerSet().getSize()):
        marker = model.getMarkerSet().get(i)
        frame = marker.getParentFrame()
        x_bf = frame.findTransformInBaseFrame()
        loc = x_bf.shiftFrameStationToBase(marker.get_location())
        markers.append({"name": marker.getName(), "body": frame.findBaseFrame().getName(),
                        "location": _vec3(loc)})

    return {"format_version": FORMAT_VERSION, "name": model.getName(),
            "gravity": _vec3(model.getGravity()), "bodies": bodies, "joints": joints,
            "coordinates": coordinates, "markers": markers,
            "contact_spheres": _contact_spheres(model), "coordinate_couplers": couplers}


def _coordinate_couplers(model) -> list[dict]:
    """CoordinateCouplerConstraints as data (dependent = scale * f(independent)).

    The tree itself treats every coordinate as independent, exactly as OpenSim's
    InverseDynamicsSolver and SimbodyMatterSubsystem::calcM do; a caller that wants the coupled
    motion sets the dependent coordinate from these entries. Other constraint types raise.
    """
    out = []
    constraints = model.getConstraintSet()
    for i in range(constraints.getSize()):
        con = constraints.get(i)
        kind = con.getConcreteClassName()
        if kind != "CoordinateCouplerConstraint":
            raise ModelError(f"constraint {con.getName()} is a {kind}, which is not supported",
                             hint="remove it from the model's ConstraintSet")
        cc = opensim.CoordinateCouplerConstraint.safeDownCast(con)
        indep = cc.getIndependentCoordinateNames()
        if indep.getSize() != 1:
            raise ModelError(f"coupler {con.getName()} has {indep.getSize()} independent "
                             "coordinates; only one is supported")
        func = _export_function(cc.getFunction(), indep.get(0), f"constraint {con.getName()}")
        func["scale"] *= float(cc.getPropertyByName("scale_factor").toString())
        out.append({"name": con.getName(), "dependent": cc.getDependentCoordinateName(),
                    "independent": indep.get(0), "function": func})
    return out


def _contact_spheres(model) -> list[dict]:
    """Contact spheres that a SmoothSphereHalfSpaceForce uses, with its parameters."""
    params = ("stiffness", "dissipation", "static_friction", "dynamic_friction",
              "viscous_friction", "transition_velocity", "hertz_smoothing",
              "hunt_crossley_smoothing", "constant_contact_force")
    out = []
    forces = model.getForceSet()
    for i in range(forces.getSize()):
        force = opensim.SmoothSphereHalfSpaceForce.safeDownCast(forces.get(i))
        if force is None:
            continue
        sphere = opensim.ContactSphere.safeDownCast(
            force.getConnectee("sphere"))
        half = opensim.ContactHalfSpace.safeDownCast(force.getConnectee("half_space"))
        frame = sphere.getFrame()
        center = frame.findTransformInBaseFrame().shiftFrameStationToBase(sphere.get_location())
        hframe = half.getFrame()
        x_hs = hframe.findTransformInBaseFrame().compose(half.getTransform())
        entry = {"name": force.getName(), "sphere": sphere.getName(),
                 "body": frame.findBaseFrame().getName(), "location": _vec3(center),
                 "radius": float(sphere.getRadius()),
                 "half_space": {"body": hframe.findBaseFrame().getName(), **_transform(x_hs)}}
        for p in params:
            if force.hasProperty(p):
                entry[p] = float(force.getPropertyByName(p).toString())
        out.append(entry)
    return out


def write_tree(model_or_path, json_path: str | Path) -> Path:
    """Export the tree and write it as JSON (atomically: temp file, then rename)."""
    json_path = Path(json_path)
    tree = export_tree(model_or_path)
    tmp = json_path.with_name("_" + json_path.name + ".tmp")
    tmp.write_text(json.dumps(tree, indent=1))
    tmp.replace(json_path)
    return json_path


def simbody_vectors(coordinates: list[dict], *rows) -> list:
    """`opensim.Vector`s in Simbody's mobility order (what State.setQ/setU and
    InverseDynamicsSolver take) from rows of values in OpenSim's coordinate order.
    `coordinates` is an exported tree's "coordinates" list."""
    out = []
    for row in rows:
        vector = opensim.Vector(len(coordinates), 0.0)
        for coordinate, value in zip(coordinates, row):
            vector.set(int(coordinate["mobility_index"]), float(value))
        out.append(vector)
    return out
