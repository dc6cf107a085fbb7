"""Rigid-body algorithms over a small array interface (`ops`), written once for any backend.

`ops` must provide: const(ndarray), sin, cos, matmul(A, B) and matvec(A, v) for 3x3,
transpose(A), column(A, i), from_columns([c0, c1, c2]), cross(a, b), dot(a, b) -> scalar,
outer(a, b), vscale(v, s) (vector times batch scalar), mscale(M, s), stack(list of scalars)
-> (..., N), unstack(q) -> list of scalars, zeros_like(scalar), concat(vectors), stack_rows
(vectors -> (..., V, K)), mm (general matrix product), scale_rows(M, s) and
piecewise_cubic(x, knots, coefs, y0, s0, y1, s1) -> (y, dy/dx, d2y/dx2). Scalars are batch
arrays (...,), vectors (..., 3), matrices (..., 3, 3); plain Python floats and `None` (meaning
zero) are accepted where noted, so constant terms cost nothing. `models/dynamics.py` holds the
torch backend; the same code is meant to run on CasADi symbols later.

Everything is expressed in ground: frame orientations R (child axes in ground), origins o,
angular velocity w, origin velocity v, angular acceleration al, origin acceleration a.
Generalized coordinates and speeds are OpenSim's (u = qdot for every supported joint).
"""
from __future__ import annotations

import numpy as np

from models.tree import Tree

# ---- helpers that treat None as an exact zero ----------------------------------------------


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _sub(a, b):
    if b is None:
        return a
    if a is None:
        return -b
    return a - b


def _cross(ops, a, b):
    return None if a is None or b is None else ops.cross(a, b)


def _vscale(ops, v, s):
    if v is None or s is None:
        return None
    if isinstance(s, float):
        return v * s
    return ops.vscale(v, s)


def _smul(a, b):
    """Product of two batch scalars or floats (None = 0)."""
    if a is None or b is None:
        return None
    return a * b


# ---- virtual dofs ---------------------------------------------------------------------------


def eval_function(ops, func: dict, x):
    """(f, df/dx, d2f/dx2) of an exported function at batch scalar x; floats where constant."""
    s, kind = func["scale"], func["kind"]
    if kind == "linear":
        return s * (func["slope"] * x + func["intercept"]), s * func["slope"], None
    if kind == "polynomial":
        c = func["coefficients"]  # highest power first
        n = len(c) - 1
        y, dy, d2y = c[0] * s + 0.0 * x, None, None
        for i in range(1, n + 1):
            # Horner on value and derivatives together (d2 before d1 before value).
            d2y = _add(d2y * x if d2y is not None else None, 2.0 * dy if dy is not None else None)
            dy = _add(dy * x if dy is not None else None, y)
            y = y * x + c[i] * s
        return y, dy, d2y
    if kind == "piecewise_cubic":
        y, dy, d2y = ops.piecewise_cubic(x, func["x"], func["coefficients"], func["y_left"],
                                         func["slope_left"], func["y_right"],
                                         func["slope_right"])
        return y * s, dy * s, d2y * s
    raise ValueError(f"unknown function kind {kind!r}")


def eval_dofs(ops, tree: Tree, q_list, qd_list=None, qdd_list=None):
    """Virtual dof values, rates and accelerations (lists; None where exactly zero)."""
    th, thd, thdd, dth = [], [], [], []
    for dof in tree.dofs:
        y, dy, d2y = eval_function(ops, dof.function, q_list[dof.coordinate])
        th.append(y)
        dth.append(dy)
        qd = qd_list[dof.coordinate] if qd_list is not None else None
        qdd = qdd_list[dof.coordinate] if qdd_list is not None else None
        thd.append(_smul(dy, qd))
        thdd.append(_add(_smul(d2y, _smul(qd, qd)), _smul(dy, qdd)))
    return th, dth, thd, thdd


# ---- kinematics -----------------------------------------------------------------------------


def _rotation(ops, axis, angle):
    """Rodrigues rotation about a constant unit axis by a batch angle."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return (ops.const(np.eye(3)) + ops.mscale(ops.const(k), ops.sin(angle))
            + ops.mscale(ops.const(k @ k), 1.0 - ops.cos(angle)))


def _rotate(ops, rp, axis, angle):
    """rp @ Rot(axis, angle); for a coordinate axis (+-x, +-y, +-z, the common case) only two
    columns change, which costs a third of the general product."""
    nz = np.flatnonzero(axis)
    if len(nz) != 1:
        rot = _rotation(ops, axis, angle)
        return rot if rp is None else ops.matmul(rp, rot)
    i = int(nz[0])
    j, k = (i + 1) % 3, (i + 2) % 3
    base = ops.const(np.eye(3)) if rp is None else rp
    cols = [ops.column(base, m) for m in range(3)]
    s, c = ops.sin(angle), ops.cos(angle)
    if axis[i] < 0:
        s = -s
    out = [None, None, None]
    out[i] = cols[i]
    out[j] = ops.vscale(cols[j], c) + ops.vscale(cols[k], s)
    out[k] = ops.vscale(cols[k], c) - ops.vscale(cols[j], s)
    return ops.from_columns(out)


def frame_poses(ops, tree: Tree, th):
    """Orientation R and origin o in ground of every frame (index 0 = ground: None, None)."""
    R, o = [None], [None]
    for st in tree.steps:
        rp, op = R[st.parent], o[st.parent]
        if st.kind == "fixed":
            rc = ops.const(st.R)
            R.append(rc if rp is None else ops.matmul(rp, rc))
            r = ops.const(st.p) if rp is None else ops.matvec(rp, ops.const(st.p))
            o.append(_add(op, r))
        elif st.kind == "rev":
            R.append(_rotate(ops, rp, st.axis, th[st.dof]))
            o.append(op)
        else:  # prismatic
            axis_w = ops.const(st.axis) if rp is None else ops.matvec(rp, ops.const(st.axis))
            R.append(rp)
            o.append(_add(op, ops.vscale(axis_w, th[st.dof])))
    return R, o


def _axis_in_ground(ops, R, st):
    rp = R[st.parent]
    return ops.const(st.axis) if rp is None else ops.matvec(rp, ops.const(st.axis))


def frame_motion(ops, tree: Tree, R, o, thd, thdd, a0=None, simbody_hdot=True,
                 linear_velocity=True):
    """Angular/linear velocity and acceleration of every frame origin, in ground.

    a0 is the ground's linear acceleration (pass -gravity to fold gravity into RNEA).
    simbody_hdot: reproduce Simbody's velocity-product term of CustomJoint rotations (see
    models/tree.py `_simbody_hdot_extras`); False gives the exact derivative.
    linear_velocity=False skips v (None everywhere): accelerations do not need it.
    """
    dof_step = {st.dof: k for k, st in enumerate(tree.steps) if st.kind != "fixed"}
    w, v, al, a = [None], [None], [None], [a0]
    for i, st in enumerate(tree.steps):
        p = st.parent
        wp, vp, alp, ap = w[p], v[p], al[p], a[p]
        if st.kind == "fixed":
            r = None if (o[i + 1] is None) else (o[i + 1] if o[p] is None else o[i + 1] - o[p])
            w.append(wp)
            al.append(alp)
            v.append(_add(vp, _cross(ops, wp, r)) if linear_velocity else None)
            a.append(_add(ap, _add(_cross(ops, alp, r), _cross(ops, wp, _cross(ops, wp, r)))))
        elif st.kind == "rev":
            axis_w = _axis_in_ground(ops, R, st)
            wrel = _vscale(ops, axis_w, thd[st.dof])
            w.append(_add(wp, wrel))
            alk = _add(alp, _add(_vscale(ops, axis_w, thdd[st.dof]), _cross(ops, wp, wrel)))
            if simbody_hdot and st.hdot_extra and wrel is not None:
                extra = None
                for d, sign in st.hdot_extra:
                    axis_d = _axis_in_ground(ops, R, tree.steps[dof_step[d]])
                    extra = _add(extra, _vscale(ops, axis_d, _smul(sign, thd[d])))
                alk = _add(alk, _cross(ops, extra, wrel))
            al.append(alk)
            v.append(vp)
            a.append(ap)
        else:
            axis_w = _axis_in_ground(ops, R, st)
            r = o[i + 1] if o[p] is None else o[i + 1] - o[p]
            vrel = _vscale(ops, axis_w, thd[st.dof])
            w.append(wp)
            al.append(alp)
            v.append(_add(vp, _add(_cross(ops, wp, r), vrel)) if linear_velocity else None)
            coriolis = _cross(ops, wp, vrel)
            a.append(_add(ap, _add(_add(_cross(ops, alp, r), _cross(ops, wp, _cross(ops, wp, r))),
                                   _add(_add(coriolis, coriolis),
                                        _vscale(ops, axis_w, thdd[st.dof])))))
    return w, v, al, a


def points_in_ground(ops, tree: Tree, R, o, bodies, locations):
    """Ground positions of points fixed on bodies (body -1 = ground); list of (..., 3)."""
    out = []
    for b, loc in zip(bodies, locations, strict=True):
        f = 0 if b < 0 else tree.body_frame[b]
        c = ops.const(loc)
        out.append(c if R[f] is None else _add(o[f], ops.matvec(R[f], c)))
    return out


# ---- inverse dynamics -----------------------------------------------------------------------


def rnea(ops, tree: Tree, q, qd=None, qdd=None, gravity=True, loads=(), simbody_hdot=True):
    """Recursive Newton-Euler: generalized forces (..., N) in OpenSim's coordinate order.

    q, qd, qdd: (..., N) arrays (qd/qdd may be None = zero). loads: iterable of
    (body_index, force (...,3), point (...,3) or None, torque (...,3) or None), all in ground;
    force applied at point (body origin if None), plus a free torque. Each returned entry is
    the generalized force along that coordinate's speed: N*m for rotational, N for
    translational coordinates, with the sign of OpenSim's InverseDynamicsSolver.
    """
    q_list = ops.unstack(q)
    qd_list = None if qd is None else ops.unstack(qd)
    qdd_list = None if qdd is None else ops.unstack(qdd)
    th, dth, thd, thdd = eval_dofs(ops, tree, q_list, qd_list, qdd_list)
    R, o = frame_poses(ops, tree, th)
    a0 = ops.const(-tree.gravity) if gravity else None
    w, _, al, a = frame_motion(ops, tree, R, o, thd, thdd, a0, simbody_hdot,
                               linear_velocity=False)

    nb = len(tree.body_names)
    # Moments are taken about each body's own origin (not ground's) so that small distal
    # bodies far from the origin keep full precision.
    origin = [o[tree.body_frame[b]] for b in range(nb)]
    force, moment = [None] * nb, [None] * nb
    for b in range(nb):
        f = tree.body_frame[b]
        rb = R[f]
        r = ops.matvec(rb, ops.const(tree.com[b]))
        acc = _add(a[f], _add(_cross(ops, al[f], r), _cross(ops, w[f], _cross(ops, w[f], r))))
        fb = None if acc is None else acc * float(tree.mass[b])
        inertia = ops.const(tree.inertia[b])
        rt = ops.transpose(rb)
        wb = None if w[f] is None else ops.matvec(rt, w[f])
        alb = None if al[f] is None else ops.matvec(rt, al[f])
        nbody = _add(None if alb is None else ops.matvec(inertia, alb),
                     None if wb is None else ops.cross(wb, ops.matvec(inertia, wb)))
        nb_w = None if nbody is None else ops.matvec(rb, nbody)
        force[b] = fb
        moment[b] = _add(nb_w, _cross(ops, r, fb))
    for body, fext, point, torque in loads:
        if body < 0:
            continue
        force[body] = _add(force[body], -fext)
        arm = None if point is None else _sub(point, origin[body])
        m = _add(_cross(ops, arm, fext), torque)
        moment[body] = _add(moment[body], None if m is None else -m)

    # Subtree sums: children come after parents in body_frame order.
    order = sorted(range(nb), key=lambda b: tree.body_frame[b])
    for b in reversed(order):
        p = tree.body_parent[b]
        if p >= 0:
            force[p] = _add(force[p], force[b])
            arm = _sub(origin[b], origin[p])
            moment[p] = _add(moment[p], _add(moment[b], _cross(ops, arm, force[b])))

    tau = [None] * len(tree.coordinate_names)
    for i, st in enumerate(tree.steps):
        if st.kind == "fixed":
            continue
        fs, ms = force[st.body], moment[st.body]
        axis_w = _axis_in_ground(ops, R, st)
        if st.kind == "rev":
            arm = _sub(origin[st.body], o[i + 1])
            m_joint = _add(ms, _cross(ops, arm, fs))
            tk = None if m_joint is None else ops.dot(axis_w, m_joint)
        else:
            tk = None if fs is None else ops.dot(axis_w, fs)
        j = tree.dofs[st.dof].coordinate
        tau[j] = _add(tau[j], _smul(dth[st.dof], tk))
    zero = ops.zeros_like(q_list[0])
    return ops.stack([zero if t is None else t + zero for t in tau])


def point_jacobian(ops, tree: Tree, R, o, dth, body: int, point):
    """d(point in ground)/dq for a ground point fixed on `body`: list over coordinates of
    (..., 3) columns (None where the coordinate does not move the point)."""
    cols = [None] * len(tree.coordinate_names)
    f = 0 if body < 0 else tree.body_frame[body]
    while f > 0:
        st = tree.steps[f - 1]
        if st.kind != "fixed":
            axis_w = _axis_in_ground(ops, R, st)
            rel = point if o[f] is None else point - o[f]
            col = ops.cross(axis_w, rel) if st.kind == "rev" else axis_w
            j = tree.dofs[st.dof].coordinate
            cols[j] = _add(cols[j], _vscale(ops, col, dth[st.dof]))
        f = st.parent
    return cols


# ---- mass matrix ----------------------------------------------------------------------------


def dof_ancestry(tree: Tree):
    """(V, V) 0/1 array: [j, k] = 1 when virtual dof j moves everything dof k moves (j is k or
    lies between k and ground); and the (V, N) map of dofs to coordinates."""
    nv, n = len(tree.dofs), len(tree.coordinate_names)
    anc = np.zeros((nv, nv))
    for st in tree.steps:
        if st.kind == "fixed":
            continue
        f = st.parent
        anc[st.dof, st.dof] = 1.0
        while f > 0:
            up = tree.steps[f - 1]
            if up.kind != "fixed":
                anc[up.dof, st.dof] = 1.0
            f = up.parent
    onehot = np.zeros((nv, n))
    for v, dof in enumerate(tree.dofs):
        onehot[v, dof.coordinate] = 1.0
    return anc, onehot


def composite_inertias(ops, tree: Tree, R, o):
    """Per body, its subtree's mass, centre of mass (ground) and rotational inertia about that
    centre (ground axes), combined leaves-first with parallel-axis shifts (short distances)."""
    nb = len(tree.body_names)
    eye = ops.const(np.eye(3))
    mass = [float(m) for m in tree.mass]
    com, inertia = [None] * nb, [None] * nb
    for b in range(nb):
        rb = R[tree.body_frame[b]]
        com[b] = _add(o[tree.body_frame[b]], ops.matvec(rb, ops.const(tree.com[b])))
        inertia[b] = ops.matmul(ops.matmul(rb, ops.const(tree.inertia[b])), ops.transpose(rb))

    def shift(m, d):  # inertia of a point mass m at offset d
        return m * (ops.mscale(eye, ops.dot(d, d)) - ops.outer(d, d))

    order = sorted(range(nb), key=lambda b: tree.body_frame[b])
    for b in reversed(order):
        p = tree.body_parent[b]
        if p < 0 or mass[b] + mass[p] == 0.0:
            if p >= 0:
                mass[p] += mass[b]
            continue
        m = mass[p] + mass[b]
        c = (com[p] * mass[p] + com[b] * mass[b]) * (1.0 / m)
        inertia[p] = (inertia[p] + inertia[b] + shift(mass[p], com[p] - c)
                      + shift(mass[b], com[b] - c))
        com[p], mass[p] = c, m
    return mass, com, inertia


def mass_matrix(ops, tree: Tree, q):
    """Joint-space mass matrix (..., N, N), composite-rigid-body style.

    For virtual dofs j, k with j moving k's subtree, M_jk = S_j . (I_k S_k), S the unit twist
    and I_k the subtree's spatial inertia; momenta are formed about each dof's own axis point
    (precise for small distal bodies) and dotted about the ground origin. Then M = D^T M_v D
    with D the (V, N) map theta' of the dofs to the coordinates.
    """
    if "ancestry" not in tree.cache:
        tree.cache["ancestry"] = dof_ancestry(tree)
    anc, onehot = tree.cache["ancestry"]
    q_list = ops.unstack(q)
    th, dth, _, _ = eval_dofs(ops, tree, q_list)
    R, o = frame_poses(ops, tree, th)
    mass, com, inertia = composite_inertias(ops, tree, R, o)
    zero = ops.zeros_like(q_list[0])
    zero3 = ops.vscale(ops.const(np.zeros(3)), zero)
    twists, wrenches = [None] * len(tree.dofs), [None] * len(tree.dofs)
    for i, st in enumerate(tree.steps):
        if st.kind == "fixed":
            continue
        axis = _axis_in_ground(ops, R, st)
        point = o[i + 1] if o[i + 1] is not None else zero3
        m, d = mass[st.body], com[st.body] - point
        if st.kind == "rev":
            lin = ops.cross(axis, d) * m
            ang = ops.matvec(inertia[st.body], axis) + ops.cross(d, lin)
            twists[st.dof] = ops.concat([axis, ops.cross(point, axis)])
        else:
            lin = axis * m
            ang = ops.cross(d, lin)
            twists[st.dof] = ops.concat([zero3 + 0.0 * axis, axis])
        wrenches[st.dof] = ops.concat([ang + ops.cross(point, lin), lin])
    s, f = ops.stack_rows(twists), ops.stack_rows(wrenches)  # (..., V, 6)
    sf = ops.mm(s, ops.transpose(f))  # [j, k] = S_j . F_k
    lower = sf * ops.const(anc)
    mv = lower + ops.transpose(sf * ops.const(anc - np.diag(np.diag(anc))))
    d = ops.scale_rows(ops.const(onehot), ops.stack([zero + t for t in dth]))  # (..., V, N)
    return ops.mm(ops.transpose(d), ops.mm(mv, d))
