"""The `models/rigid_body.py` array interface on CasADi SX symbols (one sample, no batch).

A scalar is a 1x1 SX, a vector a 3x1 SX, a matrix a 3x3 SX. CasADi's SX folds products with
the numeric constants 0 and 1 as the graph is built, so constant joint axes and offsets cost
nothing, as in `models/scalar_ops.py`. The physics is the very code that runs on torch tensors:
`rigid_body.rnea(CasadiOps(), tree, q, qd, qdd)` with q, qd, qdd (N, 1) SX.
"""
from __future__ import annotations

import casadi
import numpy as np


def _sx(a) -> casadi.SX:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return casadi.SX(casadi.DM(arr))


class CasadiOps:
    """Array interface for `models.rigid_body` over CasADi SX (see the module docstring)."""

    const = staticmethod(_sx)
    sin = staticmethod(casadi.sin)
    cos = staticmethod(casadi.cos)
    matmul = staticmethod(casadi.mtimes)
    matvec = staticmethod(casadi.mtimes)
    mm = staticmethod(casadi.mtimes)
    cross = staticmethod(casadi.cross)
    dot = staticmethod(casadi.dot)

    @staticmethod
    def transpose(a):
        return a.T

    @staticmethod
    def column(a, i):
        return a[:, i]

    @staticmethod
    def from_columns(cols):
        return casadi.horzcat(*cols)

    @staticmethod
    def outer(a, b):
        return casadi.mtimes(a, b.T)

    @staticmethod
    def vscale(v, s):
        return v * s

    @staticmethod
    def mscale(m, s):
        return m * s

    @staticmethod
    def stack(items):
        return casadi.vertcat(*items)

    @staticmethod
    def unstack(x):
        return [x[i] for i in range(x.shape[0])]

    @staticmethod
    def zeros_like(x):
        return casadi.SX.zeros(x.shape) if hasattr(x, "shape") else casadi.SX(0.0)

    @staticmethod
    def concat(items):
        return casadi.vertcat(*items)

    @staticmethod
    def stack_rows(items):
        return casadi.horzcat(*items).T

    @staticmethod
    def scale_rows(m, s):
        # s: (V, 1) -> each row i of m times s[i]
        return casadi.diag(s) @ m

    @staticmethod
    def piecewise_cubic(x, knots, coefs, y0, s0, y1, s1):
        """OpenSim's spline: the last knot <= x picks the interval (clamped to the first/last),
        linear extrapolation with the end slopes outside the knots (as the torch backends)."""
        k = [float(v) for v in np.asarray(knots, dtype=np.float64)]
        c = np.asarray(coefs, dtype=np.float64)  # (K-1, 4)
        knot = casadi.SX(k[0])
        cs = [casadi.SX(float(v)) for v in c[0]]
        for i in range(1, len(k) - 1):
            inside = x >= k[i]
            knot = casadi.if_else(inside, k[i], knot)
            cs = [casadi.if_else(inside, float(v), old) for v, old in zip(c[i], cs, strict=True)]
        c0, c1, c2, c3 = cs
        h = x - knot
        y = c0 + h * (c1 + h * (c2 + h * c3))
        dy = c1 + h * (2.0 * c2 + 3.0 * h * c3)
        d2y = 2.0 * c2 + 6.0 * h * c3
        left, right = x < k[0], x > k[-1]
        y = casadi.if_else(left, y0 + s0 * (x - k[0]),
                           casadi.if_else(right, y1 + s1 * (x - k[-1]), y))
        dy = casadi.if_else(left, s0, casadi.if_else(right, s1, dy))
        d2y = casadi.if_else(casadi.logic_or(left, right), 0.0, d2y)
        return y, dy, d2y
