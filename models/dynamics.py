"""Differentiable multibody dynamics of an OpenSim model in PyTorch.

    from models.dynamics import Multibody
    mb = Multibody.from_osim("model.osim", dtype=torch.float64)
    mb.inverse_dynamics(q, qd, qdd)          # (..., N) generalized forces, gravity on

Coordinates, speeds and generalized forces are OpenSim's, in the model's coordinate-set order
(`mb.coordinate_names`); radians/metres, N*m/N. The algorithms live in `models/rigid_body.py`
over a small array interface; `TorchOps` below is its torch backend. See docs/dynamics.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models import rigid_body as rb
from models.scalar_ops import ScalarOps, TensorBatching, vec_of
from models.tree import Tree, build_tree
from pipeline.errors import ModelError


class TorchOps(TensorBatching):
    """The array interface of models/rigid_body.py on torch tensors of one dtype/device."""

    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.dtype, self.device = dtype, device
        self._cache: dict = {}

    def const(self, a):
        arr = np.asarray(a, dtype=np.float64)
        key = (arr.shape, arr.tobytes())
        t = self._cache.get(key)
        if t is None:
            t = torch.as_tensor(arr, dtype=self.dtype, device=self.device)
            self._cache[key] = t
        return t

    sin = staticmethod(torch.sin)
    cos = staticmethod(torch.cos)

    # 3x3 products as broadcast multiply + sum: batched BLAS (bmm) is ~20x slower on CPU for
    # millions of tiny matrices.
    # Written as three broadcast products: a reduction over a length-3 axis (sum) is slow too.
    @staticmethod
    def matmul(a, b):
        return (a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :]
                + a[..., :, 2:3] * b[..., 2:3, :])

    @staticmethod
    def matvec(a, v):
        return a[..., :, 0] * v[..., 0:1] + a[..., :, 1] * v[..., 1:2] + a[..., :, 2] * v[..., 2:3]

    @staticmethod
    def transpose(a):
        return a.transpose(-1, -2)

    mm = staticmethod(torch.matmul)  # general (..., A, B) @ (..., B, C)

    @staticmethod
    def column(a, i):
        return a[..., :, i]

    @staticmethod
    def from_columns(cols):
        return torch.stack(torch.broadcast_tensors(*cols), dim=-1)

    @staticmethod
    def outer(a, b):
        return a.unsqueeze(-1) * b.unsqueeze(-2)

    @staticmethod
    def concat(items):
        return torch.cat(torch.broadcast_tensors(*items), dim=-1)

    @staticmethod
    def stack_rows(items):
        return torch.stack(torch.broadcast_tensors(*items), dim=-2)

    @staticmethod
    def scale_rows(m, s):
        return m * s.unsqueeze(-1)

    @staticmethod
    def cross(a, b):
        a, b = torch.broadcast_tensors(a, b)
        return torch.linalg.cross(a, b)

    @staticmethod
    def dot(a, b):
        return (a * b).sum(-1)

    @staticmethod
    def vscale(v, s):
        return v * s.unsqueeze(-1)

    @staticmethod
    def mscale(m, s):
        return m * s.unsqueeze(-1).unsqueeze(-1)

    def piecewise_cubic(self, x, knots, coefs, y0, s0, y1, s1):
        k = self.const(knots)
        c = self.const(coefs)  # (K-1, 4)
        idx = (torch.bucketize(x.detach().contiguous(), k, right=True) - 1).clamp(0, k.shape[0] - 2)
        h = x - k[idx]
        c0, c1, c2, c3 = c[idx].unbind(-1)
        y = c0 + h * (c1 + h * (c2 + h * c3))
        dy = c1 + h * (2.0 * c2 + 3.0 * h * c3)
        d2y = 2.0 * c2 + 6.0 * h * c3
        # OpenSim's splines extrapolate linearly with the end slopes.
        left, right = x < k[0], x > k[-1]
        y = torch.where(left, y0 + s0 * (x - k[0]), torch.where(right, y1 + s1 * (x - k[-1]), y))
        dy = torch.where(left, torch.full_like(x, s0), torch.where(right, torch.full_like(x, s1),
                                                                   dy))
        d2y = torch.where(left | right, torch.zeros_like(x), d2y)
        return y, dy, d2y


@dataclass
class ExternalLoad:
    """A load on a named body, all in ground: force (..., 3) N applied at point (..., 3) m
    (the body origin if None) plus a free torque (..., 3) N*m (none if None)."""
    body: str
    force: torch.Tensor
    point: torch.Tensor | None = None
    torque: torch.Tensor | None = None


class Multibody(nn.Module):
    """An OpenSim multibody tree: kinematics and dynamics, batched over leading dimensions.

    All methods take q, qd, qdd, tau as (..., N) tensors in `coordinate_names` order (OpenSim's
    coordinate-set order; u = qdot for every supported joint) and work in the inputs' dtype and
    device. Coordinate clamping/locking and coupler constraints are not applied: every
    coordinate is independent, as in OpenSim's InverseDynamicsSolver.
    """

    def __init__(self, tree: Tree, dtype: torch.dtype = torch.float32,
                 simbody_hdot: bool = True):
        super().__init__()
        self.tree = tree
        self.dtype = dtype  # of tensors the module creates itself; inputs keep their own
        # Reproduce Simbody's CustomJoint velocity-product term (what OpenSim and Moco compute);
        # False gives the exact derivative. They differ by ~1e-2 N*m at fast knee motion.
        self.simbody_hdot = simbody_hdot
        self._ops: dict = {}
        self._body_index = {n: i for i, n in enumerate(tree.body_names)}

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_tree(cls, desc: dict, dtype: torch.dtype = torch.float32,
                  simbody_hdot: bool = True) -> Multibody:
        """From the dict that `osim.export_tree.export_tree` returns."""
        return cls(build_tree(desc), dtype, simbody_hdot)

    @classmethod
    def from_json(cls, path: str | Path, dtype: torch.dtype = torch.float32,
                  simbody_hdot: bool = True) -> Multibody:
        """From a JSON file that `osim.export_tree.write_tree` wrote."""
        path = Path(path)
        if not path.exists():
            raise ModelError("tree description not found", file=path)
        return cls.from_tree(json.loads(path.read_text()), dtype, simbody_hdot)

    @classmethod
    def from_osim(cls, path_or_model, dtype: torch.dtype = torch.float32,
                  simbody_hdot: bool = True) -> Multibody:
        """From an .osim file (or opensim.Model); needs opensim, imported only here."""
        from osim.export_tree import export_tree  # lazy: models/ must not need opensim
        return cls.from_tree(export_tree(path_or_model), dtype, simbody_hdot)

    # ---- names -------------------------------------------------------------------------------
    @property
    def coordinate_names(self) -> list[str]:
        return list(self.tree.coordinate_names)

    @property
    def marker_names(self) -> list[str]:
        return list(self.tree.marker_names)

    @property
    def body_names(self) -> list[str]:
        return list(self.tree.body_names)

    @property
    def contact_names(self) -> list[str]:
        return list(self.tree.contact_names)

    @property
    def num_coordinates(self) -> int:
        return len(self.tree.coordinate_names)

    def default_coordinates(self, *batch: int, device=None) -> torch.Tensor:
        """The model's default coordinate values (..., N) in `self.dtype` (rad / m)."""
        q = torch.tensor([c["default"] for c in self.tree.description["coordinates"]],
                         dtype=self.dtype, device=device)
        return q.expand(*batch, -1).clone()

    # ---- internals ---------------------------------------------------------------------------
    def ops_for(self, x: torch.Tensor) -> TorchOps:
        key = (x.dtype, x.device)
        if key not in self._ops:
            self._ops[key] = TorchOps(x.dtype, x.device)
        return self._ops[key]

    def _check(self, name: str, x: torch.Tensor) -> None:
        if x.shape[-1] != self.num_coordinates:
            raise ValueError(f"{name} has {x.shape[-1]} coordinates in its last dimension, "
                             f"the model has {self.num_coordinates}")

    def _poses(self, q):
        self._check("q", q)
        ops = self.ops_for(q)
        th, dth, _, _ = rb.eval_dofs(ops, self.tree, ops.unstack(q))
        R, o = rb.frame_poses(ops, self.tree, th)
        return ops, th, dth, R, o

    def _loads(self, external):
        out = []
        for load in external or ():
            if load.body == "ground":
                continue
            if load.body not in self._body_index:
                raise ValueError(f"external load on unknown body {load.body!r}")
            out.append((self._body_index[load.body], load.force, load.point, load.torque))
        return out

    # ---- kinematics --------------------------------------------------------------------------
    def body_poses(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Body orientations (..., B, 3, 3) (body axes in ground) and origins (..., B, 3), m."""
        ops, _, _, R, o = self._poses(q)
        eye, zero = ops.const(np.eye(3)), ops.zeros_like(q[..., :3])
        rs = [R[f] if R[f] is not None else eye for f in self.tree.body_frame]
        os_ = [o[f] if o[f] is not None else ops.const(np.zeros(3)) for f in self.tree.body_frame]
        rs = torch.stack(torch.broadcast_tensors(*rs, eye + zero[..., None]), -3)[..., :-1, :, :]
        os_ = torch.stack(torch.broadcast_tensors(*os_, zero), -2)[..., :-1, :]
        return rs, os_

    def _points(self, q, bodies, locations):
        ops, _, _, R, o = self._poses(q)
        pts = rb.points_in_ground(ops, self.tree, R, o, bodies, locations)
        zero = ops.zeros_like(q[..., :3])
        return torch.stack(torch.broadcast_tensors(*pts, zero), -2)[..., :-1, :]

    def marker_positions(self, q: torch.Tensor) -> torch.Tensor:
        """Model markers in ground, (..., M, 3) m, in `marker_names` order."""
        return self._points(q, self.tree.marker_body, self.tree.marker_location)

    def contact_positions(self, q: torch.Tensor) -> torch.Tensor:
        """Contact sphere centres in ground, (..., K, 3) m, in `contact_names` order."""
        return self._points(q, self.tree.contact_body, self.tree.contact_location)

    def point_jacobian(self, q: torch.Tensor, body: str, location) -> torch.Tensor:
        """d(point)/dq (..., 3, N) of a point fixed at `location` (m, body frame) on `body`."""
        ops, _, dth, R, o = self._poses(q)
        b = self._body_index[body]
        p = rb.points_in_ground(ops, self.tree, R, o, [b], [location])[0]
        cols = rb.point_jacobian(ops, self.tree, R, o, dth, b, p)
        zero = ops.zeros_like(q[..., :3])
        return torch.stack([zero if c is None else c + zero for c in cols], -1)

    def contact_jacobian(self, q: torch.Tensor) -> torch.Tensor:
        """Jacobians of the contact sphere centres, (..., K, 3, N); J @ qd is their velocity."""
        jac = [self.point_jacobian(q, self.tree.body_names[b], loc)
               for b, loc in zip(self.tree.contact_body, self.tree.contact_location, strict=True)]
        if not jac:
            return q.new_zeros(*q.shape[:-1], 0, 3, self.num_coordinates)
        return torch.stack(jac, -3)

    def contact_loads(self, forces: torch.Tensor, q: torch.Tensor | None = None,
                      points: torch.Tensor | None = None) -> list[ExternalLoad]:
        """Forces (..., K, 3) N in ground at the contact spheres as external loads; applied at
        `points` (..., K, 3) or, given q, at the sphere centres (equivalent to J_c^T lambda)."""
        if points is None:
            if q is None:
                raise ValueError("contact_loads needs q or points")
            points = self.contact_positions(q)
        return [ExternalLoad(self.tree.body_names[b], forces[..., k, :], points[..., k, :])
                for k, b in enumerate(self.tree.contact_body)]

    # ---- dynamics ----------------------------------------------------------------------------
    def _rnea(self, q, qd, qdd, external, generic: bool):
        ops = self.ops_for(q)
        loads = self._loads(external)
        if not generic:
            # Structure-of-arrays backend: same algorithm, ~2x faster eager, fusable by inductor.
            ops = ScalarOps(ops)
            loads = [(b, vec_of(f), vec_of(p), vec_of(t)) for b, f, p, t in loads]
        return rb.rnea(ops, self.tree, q, qd, qdd, True, loads, self.simbody_hdot)

    def inverse_dynamics(self, q, qd, qdd, external=None, generic: bool = False) -> torch.Tensor:
        """Generalized forces (..., N) (N*m rotational, N translational) that produce qdd at
        (q, qd) under gravity and the external loads (list of ExternalLoad).

        generic=True runs the algorithm on the (..., 3)-tensor backend `TorchOps` instead of
        the default structure-of-arrays `ScalarOps` (same result to rounding; for checks).
        For large fixed batches see `models.fast_id.compile_inverse_dynamics`."""
        for name, x in (("q", q), ("qd", qd), ("qdd", qdd)):
            self._check(name, x)
        return self._rnea(q, qd, qdd, external, generic)

    def bias_forces(self, q, qd, external=None, generic: bool = False) -> torch.Tensor:
        """C(q, qd) + g(q) - J^T f_ext: the inverse dynamics at zero acceleration, (..., N)."""
        self._check("q", q)
        return self._rnea(q, qd, None, external, generic)

    def mass_matrix(self, q: torch.Tensor) -> torch.Tensor:
        """Joint-space mass matrix (..., N, N) (composite rigid bodies; exact)."""
        self._check("q", q)
        return rb.mass_matrix(self.ops_for(q), self.tree, q)

    def forward_dynamics(self, q, qd, tau, external=None) -> torch.Tensor:
        """Accelerations qdd = M^-1 (tau - C - g + J^T f_ext), (..., N), by Cholesky."""
        self._check("tau", tau)
        rhs = tau - self.bias_forces(q, qd, external)
        mass = self.mass_matrix(q)
        # Jacobi scaling: the tree mixes a 85 kg pelvis with 1e-5 kg*m^2 patellae; scaling to a
        # unit diagonal first keeps the Cholesky solve accurate to ~1e-12 instead of ~1e-8.
        d = mass.diagonal(dim1=-2, dim2=-1).rsqrt()  # (..., N)
        chol = torch.linalg.cholesky(mass * d.unsqueeze(-1) * d.unsqueeze(-2))
        y = torch.cholesky_solve((rhs * d).unsqueeze(-1), chol).squeeze(-1)
        return y * d

    def forward(self, q, qd, tau, external=None) -> torch.Tensor:
        return self.forward_dynamics(q, qd, tau, external)
