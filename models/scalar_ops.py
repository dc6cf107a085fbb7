"""A structure-of-arrays backend of the `models/rigid_body.py` array interface, for speed.

`TorchOps` (models/dynamics.py) keeps vectors as (..., 3) and matrices as (..., 3, 3) tensors:
every 3-vector operation is one strided torch kernel. Here a vector is a `Vec` of three
components and a matrix a `Mat` of nine, each component either a contiguous batch tensor (...,)
or a plain Python float. Consequences:
- constants (joint offsets, axes, inertias, gravity) stay Python floats, so products with 0 and 1
  vanish and constant-only arithmetic is done once in Python, not per frame;
- every remaining operation is an elementwise op on contiguous (...,) tensors, which inductor
  (torch.compile) fuses into a few vectorized C++ loops over the batch
  (see `models.fast_id.compile_inverse_dynamics`).
The physics is unchanged: `rigid_body.rnea` runs on this backend exactly as on `TorchOps`.
Only the subset of the interface that inverse dynamics needs is provided.
"""
from __future__ import annotations

import numpy as np
import torch

# ---- scalar arithmetic that folds Python-float zeros and ones -----------------------------


def _is(x, value: float) -> bool:
    return isinstance(x, float) and x == value


def sadd(a, b):
    if _is(a, 0.0):
        return b
    if _is(b, 0.0):
        return a
    return a + b


def ssub(a, b):
    if _is(b, 0.0):
        return a
    if _is(a, 0.0):
        return -b
    return a - b


def smul(a, b):
    if _is(a, 0.0) or _is(b, 0.0):
        return 0.0
    if _is(a, 1.0):
        return b
    if _is(b, 1.0):
        return a
    if _is(a, -1.0):
        return -b
    if _is(b, -1.0):
        return -a
    return a * b


def ssum(terms):
    out = 0.0
    for t in terms:
        out = sadd(out, t)
    return out


class Vec:
    """A 3-vector of components (batch tensors or floats); + - and * by a scalar."""
    __slots__ = ("c",)

    def __init__(self, c):
        self.c = tuple(c)

    def __add__(self, other):
        return Vec(sadd(a, b) for a, b in zip(self.c, other.c, strict=True))

    def __sub__(self, other):
        return Vec(ssub(a, b) for a, b in zip(self.c, other.c, strict=True))

    def __neg__(self):
        return Vec(smul(-1.0, a) for a in self.c)

    def __mul__(self, s):
        return Vec(smul(a, s) for a in self.c)

    __rmul__ = __mul__


class Mat:
    """A 3x3 matrix as rows of components (batch tensors or floats)."""
    __slots__ = ("r",)

    def __init__(self, rows):
        self.r = tuple(tuple(row) for row in rows)

    def __add__(self, other):
        return Mat([sadd(a, b) for a, b in zip(ra, rb, strict=True)]
                   for ra, rb in zip(self.r, other.r, strict=True))


def _const_float(x) -> float:
    return float(x)


class TensorBatching:
    """Packing of per-coordinate tensors, shared by both torch backends."""

    @staticmethod
    def stack(items):
        return torch.stack(torch.broadcast_tensors(*items), dim=-1)

    @staticmethod
    def unstack(x):
        # Contiguous slices: elementwise kernels on strided views are up to 100x slower on CPU.
        return x.movedim(-1, 0).contiguous().unbind(0)

    @staticmethod
    def zeros_like(x):
        return torch.zeros_like(x)


class ScalarOps(TensorBatching):
    """The rigid_body array interface over `Vec`/`Mat` of per-component batch tensors."""

    def __init__(self, inner):
        self.inner = inner  # a TorchOps of the same dtype/device, for the spline evaluation

    @staticmethod
    def const(a):
        arr = np.asarray(a, dtype=np.float64)
        if arr.shape == ():
            return _const_float(arr)
        if arr.shape == (3,):
            return Vec(_const_float(x) for x in arr)
        if arr.shape == (3, 3):
            return Mat([_const_float(x) for x in row] for row in arr)
        raise ValueError(f"ScalarOps.const: unsupported shape {arr.shape}")

    @staticmethod
    def sin(x):
        return float(np.sin(x)) if isinstance(x, float) else torch.sin(x)

    @staticmethod
    def cos(x):
        return float(np.cos(x)) if isinstance(x, float) else torch.cos(x)

    @staticmethod
    def matmul(a, b):
        cols = list(zip(*b.r, strict=True))
        return Mat([ssum(smul(x, y) for x, y in zip(row, col, strict=True)) for col in cols]
                   for row in a.r)

    @staticmethod
    def matvec(a, v):
        return Vec(ssum(smul(x, y) for x, y in zip(row, v.c, strict=True)) for row in a.r)

    @staticmethod
    def transpose(a):
        return Mat(zip(*a.r, strict=True))

    @staticmethod
    def column(a, i):
        return Vec(row[i] for row in a.r)

    @staticmethod
    def from_columns(cols):
        return Mat(zip(*(c.c for c in cols), strict=True))

    @staticmethod
    def cross(a, b):
        (a0, a1, a2), (b0, b1, b2) = a.c, b.c
        return Vec((ssub(smul(a1, b2), smul(a2, b1)), ssub(smul(a2, b0), smul(a0, b2)),
                    ssub(smul(a0, b1), smul(a1, b0))))

    @staticmethod
    def dot(a, b):
        return ssum(smul(x, y) for x, y in zip(a.c, b.c, strict=True))

    @staticmethod
    def vscale(v, s):
        return Vec(smul(x, s) for x in v.c)

    @staticmethod
    def mscale(m, s):
        return Mat([smul(x, s) for x in row] for row in m.r)

    @staticmethod
    def piecewise_cubic(x, knots, coefs, y0, s0, y1, s1):
        """The spline as a chain of selects instead of bucketize + gather (TorchOps): the same
        interval (last knot <= x, clamped to the first/last interval) and the same arithmetic,
        but elementwise only, so that inductor can vectorize the fused loop around it."""
        k = [float(v) for v in np.asarray(knots, dtype=np.float64)]
        c = np.asarray(coefs, dtype=np.float64)  # (K-1, 4)
        knot, c0, c1, c2, c3 = (torch.full_like(x, float(v)) for v in (k[0], *c[0]))
        for i in range(1, len(k) - 1):
            inside = x >= k[i]
            knot = torch.where(inside, k[i], knot)
            c0, c1, c2, c3 = (torch.where(inside, float(v), old)
                              for v, old in zip(c[i], (c0, c1, c2, c3), strict=True))
        h = x - knot
        y = c0 + h * (c1 + h * (c2 + h * c3))
        dy = c1 + h * (2.0 * c2 + 3.0 * h * c3)
        d2y = 2.0 * c2 + 6.0 * h * c3
        # OpenSim's splines extrapolate linearly with the end slopes.
        left, right = x < k[0], x > k[-1]
        y = torch.where(left, y0 + s0 * (x - k[0]), torch.where(right, y1 + s1 * (x - k[-1]), y))
        dy = torch.where(left, s0, torch.where(right, s1, dy))
        d2y = torch.where(left | right, 0.0, d2y)
        return y, dy, d2y


def vec_of(x: torch.Tensor | None) -> Vec | None:
    """A (..., 3) tensor as a Vec of contiguous components (None stays None)."""
    return None if x is None else Vec(x.movedim(-1, 0).contiguous().unbind(0))
