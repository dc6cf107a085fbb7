"""The model's dynamics as CasADi functions of one time point (SX inside, called on MX).

`inverse(q, qd, qdd)`: inverse dynamics with the contact spheres' loads, the generalized forces
the actuators must supply, for the optimized coordinates (implicit multibody dynamics: no
mass-matrix inverse). Welded coordinates are held at their defaults (zero speed and acceleration), so a full
model's tree can stand in for the welded tracking model: a weld carries whatever generalized
force its coordinate would need. A coupled coordinate (CoordinateCouplerConstraint, e.g. the
patella's knee_angle_beta) follows its independent coordinate, q_d = f(q_i), and its
generalized force acts on the independent one through f'(q_i) (virtual work). `contact(q, qd)`: per sphere, the force on the foot (ground, N)
and its point of application (m), for the GRF tables.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import casadi
import numpy as np

from models import rigid_body as rb
from models.contact_model import SphereContact, contact_force, contact_point
from models.tree import Tree

from .casadi_ops import CasadiOps


@dataclass
class ModelSetup:
    """Which coordinates are optimized, where the rest are held, and the actuators."""
    tree: Tree
    free: list[int]                  # tree coordinate indices that are optimized
    fixed_values: np.ndarray         # (N,) values of every coordinate when held (defaults)
    spheres: list[SphereContact]
    couplers: list[tuple[int, int, dict]]   # (dependent, independent tree index, function)
    actuator_names: list[str]
    actuator_coordinate: list[int]   # index into `free` of each actuator's coordinate
    optimal_force: np.ndarray        # (A,) N*m or N per unit control
    friction_kink: float = 0.0       # rounding of the friction ramp (TrackSettings)

    @property
    def free_names(self) -> list[str]:
        return [self.tree.coordinate_names[i] for i in self.free]


def _full(ops, setup: ModelSetup, q_free, qd_free, qdd_free):
    """Full-tree (N, 1) q, qd, qdd (held coordinates at their values with zero rates, coupled
    ones from their independent coordinate), and {dependent: f'(q_independent)}."""
    n = len(setup.tree.coordinate_names)
    slot = {c: k for k, c in enumerate(setup.free)}
    q = [q_free[slot[i]] if i in slot else casadi.SX(float(setup.fixed_values[i]))
         for i in range(n)]
    qd = [qd_free[slot[i]] if i in slot else casadi.SX(0.0) for i in range(n)]
    qdd = [qdd_free[slot[i]] if i in slot else casadi.SX(0.0) for i in range(n)]
    slopes = {}
    for dep, ind, func in setup.couplers:
        y, dy, d2y = rb.eval_function(ops, func, q[ind])
        d2y = 0.0 if d2y is None else d2y
        q[dep], qd[dep] = y, dy * qd[ind]
        qdd[dep] = d2y * qd[ind] * qd[ind] + dy * qdd[ind]
        slopes[dep] = dy
    return casadi.vertcat(*q), casadi.vertcat(*qd), casadi.vertcat(*qdd), slopes


def sphere_loads(ops: CasadiOps, setup: ModelSetup, q, qd):
    """[(body, force on body (3x1), contact point (3x1))] for every sphere, all in ground."""
    tree = setup.tree
    th, _, thd, _ = rb.eval_dofs(ops, tree, ops.unstack(q), ops.unstack(qd))
    R, o = rb.frame_poses(ops, tree, th)
    w, v, _, _ = rb.frame_motion(ops, tree, R, o, thd, [None] * len(thd), None)
    loads = []
    for s in setup.spheres:
        f = tree.body_frame[s.body]
        centre = o[f] + ops.matvec(R[f], ops.const(s.center))
        depth, point = contact_point(s, [centre[i] for i in range(3)])
        point = casadi.vertcat(*point)
        velocity = v[f] + casadi.cross(w[f], point - o[f])
        force = contact_force(casadi, s, depth, [velocity[i] for i in range(3)],
                              friction_kink=setup.friction_kink)
        loads.append((s.body, casadi.vertcat(*force), point))
    return loads


def build_functions(setup: ModelSetup) -> dict[str, casadi.Function]:
    """{'inverse': (q, qd, qdd) -> (nf,) generalized forces the actuators must supply (N*m or
    N), 'contact': (q, qd) -> (3, S) forces on the feet (N), (3, S) contact points (m)}."""
    ops = CasadiOps()
    nf = len(setup.free)
    q, qd, qdd = (casadi.SX.sym(name, nf) for name in ("q", "qd", "qdd"))
    qf, qdf, qddf, slopes = _full(ops, setup, q, qd, qdd)
    loads = sphere_loads(ops, setup, qf, qdf)
    tau_full = rb.rnea(ops, setup.tree, qf, qdf, qddf,
                       loads=[(b, f, p, None) for b, f, p in loads])
    slot = {c: k for k, c in enumerate(setup.free)}
    tau = [tau_full[i] for i in setup.free]
    for dep, ind, _ in setup.couplers:
        tau[slot[ind]] = tau[slot[ind]] + slopes[dep] * tau_full[dep]
    tau = casadi.vertcat(*tau)
    opts = {"cse": True}
    forces = casadi.horzcat(*[f for _, f, _ in loads]) if loads else casadi.SX(3, 0)
    points = casadi.horzcat(*[p for _, _, p in loads]) if loads else casadi.SX(3, 0)
    return {
        "inverse": casadi.Function("inverse", [q, qd, qdd], [tau], opts),
        "contact": casadi.Function("contact", [q, qd], [forces, points], opts),
    }


def implied_support(setup: ModelSetup, q, qd, qdd) -> np.ndarray | None:
    """(P,) vertical ground force (N) that the motion (q, q', q'' as (P, nf)) needs in all, from
    inverse dynamics without contact: the generalized force of `pelvis_ty`, the ground-vertical
    translation that moves the whole body (so, by virtual work, sum m_i (a_i,y + g)). None where
    the model has no free `pelvis_ty`."""
    if "pelvis_ty" not in setup.free_names:
        return None
    k = setup.free_names.index("pelvis_ty")
    inverse = build_functions(replace(setup, spheres=[]))["inverse"].map(len(q))
    return np.array(inverse(q.T, qd.T, qdd.T))[k]
