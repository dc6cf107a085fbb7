"""Inverse dynamics compiled for one fixed batch shape: the fast path for large batches.

    from models.fast_id import compile_inverse_dynamics
    fid = compile_inverse_dynamics(mb, batch=16384)      # minutes, once per shape/dtype
    tau = fid(q, qd, qdd)                                # (16384, N), no autograd

How: `rigid_body.rnea` on the structure-of-arrays backend (`models/scalar_ops.py`) is traced
once with `make_fx` into a graph of ~10,000 elementwise aten ops on contiguous (batch,) tensors,
with every model constant folded in as a Python float. Inductor (torch.compile) fuses that graph
into a small number of vectorized C++ loops over the batch, so intermediate values stay in
registers/cache instead of going through memory once per op as in eager mode. The result equals
`Multibody.inverse_dynamics` to rounding (~1e-12 N*m on forces of ~1e3). Needs a C++ compiler
(CPU) at compile time (~4 min on the 2-core VM; inductor caches it on disk per shape/dtype).
About 0.4 us/frame at batch 16384 in float64 on 2 threads (docs/benchmarks.md). External loads
are not supported here (use the eager method); no autograd. The result is a (batch, N) view of a
coordinate-major array (call .contiguous() if a row-major copy is needed).
"""
from __future__ import annotations

import torch

from models import rigid_body as rb
from models.dynamics import Multibody
from models.scalar_ops import ScalarOps

MAX_FUSION_SIZE = 100_000  # inductor's default is 64 nodes per fused loop


class CompiledInverseDynamics:
    """Callable (q, qd, qdd) -> tau for inputs of exactly `shape` (..., N) and `dtype`."""

    def __init__(self, mb: Multibody, shape: tuple[int, ...], dtype: torch.dtype,
                 device: torch.device | str = "cpu", compile: bool = True):
        from torch.fx.experimental.proxy_tensor import make_fx  # heavy import, only here

        if shape[-1] != mb.num_coordinates:
            raise ValueError(f"shape {shape} does not end with the model's "
                             f"{mb.num_coordinates} coordinates")
        self.shape, self.dtype, self.device = tuple(shape), dtype, torch.device(device)
        # Three distinct example tensors: make_fx maps inputs to graph placeholders by identity.
        examples = [torch.zeros(self.shape, dtype=dtype, device=self.device) for _ in range(3)]
        ops = ScalarOps(mb.ops_for(examples[0]))

        # The graph takes and returns coordinate-major (N, batch) arrays, so that every load
        # and store in the fused loop is contiguous along the batch and inductor vectorizes it;
        # (batch, N) inputs would be read with stride N and the loop left scalar (~2x slower).
        def rnea_t(q_t, qd_t, qdd_t):
            tau = rb.rnea(ops, mb.tree, q_t.t(), qd_t.t(), qdd_t.t(), True, (), mb.simbody_hdot)
            return tau.t().contiguous()

        examples = [x.t().contiguous() for x in examples]
        with torch.no_grad():
            self.graph = make_fx(rnea_t)(*examples)
        self._fn = self.graph
        if compile:
            import torch._inductor.config as inductor_config
            fn = torch.compile(self.graph, dynamic=False)
            # One fused loop instead of groups of 64 nodes: intermediates between groups would
            # otherwise be written to (batch,) buffers in memory (~650 of them).
            with inductor_config.patch(max_fusion_size=MAX_FUSION_SIZE), torch.no_grad():
                fn(*examples)  # compiles now, under the patched configuration
            self._fn = fn

    def __call__(self, q: torch.Tensor, qd: torch.Tensor, qdd: torch.Tensor) -> torch.Tensor:
        for name, x in (("q", q), ("qd", qd), ("qdd", qdd)):
            if tuple(x.shape) != self.shape or x.dtype != self.dtype:
                raise ValueError(f"{name} is {tuple(x.shape)} {x.dtype}; this compiled inverse "
                                 f"dynamics takes {self.shape} {self.dtype}")
        with torch.no_grad():
            return self._fn(q.t().contiguous(), qd.t().contiguous(), qdd.t().contiguous()).t()


def compile_inverse_dynamics(mb: Multibody, batch: int, dtype: torch.dtype = torch.float64,
                             device: torch.device | str = "cpu",
                             compile: bool = True) -> CompiledInverseDynamics:
    """Inverse dynamics of `mb` for (batch, N) inputs, fused by inductor (compile=False keeps
    the traced graph uncompiled: same numbers, eager speed; for tests)."""
    return CompiledInverseDynamics(mb, (batch, mb.num_coordinates), dtype, device, compile)
