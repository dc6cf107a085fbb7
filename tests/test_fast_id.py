"""The fast inverse-dynamics paths equal the generic one: the structure-of-arrays backend
(models/scalar_ops.py, the default) and its traced graph (models/fast_id.py) against the
(..., 3)-tensor backend TorchOps that tests/test_dynamics.py checks against OpenSim."""
import numpy as np
import pytest
import torch
from conftest import shared_file

from models.dynamics import ExternalLoad, Multibody
from models.fast_id import compile_inverse_dynamics


@pytest.fixture(scope="module")
def walking():
    path = shared_file("opensim-core", "example3DWalking", "subject_walk_scaled.osim")
    return Multibody.from_osim(path, dtype=torch.float64)


def _states(mb: Multibody, n: int, seed: int):
    rng = np.random.default_rng(seed)
    ranges = mb.tree.coordinate_ranges
    lo, hi = np.maximum(ranges[:, 0], -1.4), np.minimum(ranges[:, 1], 1.4)
    q = rng.uniform(lo, hi, size=(n, len(lo)))
    return (torch.tensor(q), torch.tensor(rng.normal(0, 2.0, q.shape)),
            torch.tensor(rng.normal(0, 5.0, q.shape)))


def _assert_same(a: torch.Tensor, b: torch.Tensor):
    # 1e-12 relative to the size of the generalized forces (up to ~1e3 N*m / N here).
    scale = max(1.0, b.abs().max().item())
    assert (a - b).abs().max().item() <= 1e-12 * scale
    assert b.abs().max().item() > 10.0  # real forces, not zeros


def test_scalar_backend_equals_generic(walking):
    q, qd, qdd = _states(walking, 64, seed=11)
    _assert_same(walking.inverse_dynamics(q, qd, qdd),
                 walking.inverse_dynamics(q, qd, qdd, generic=True))
    _assert_same(walking.bias_forces(q, qd), walking.bias_forces(q, qd, generic=True))


def test_scalar_backend_equals_generic_with_loads(walking):
    q, qd, qdd = _states(walking, 16, seed=12)
    gen = torch.Generator().manual_seed(3)
    loads = [ExternalLoad("calcn_r", 300 * torch.randn(16, 3, dtype=torch.float64, generator=gen),
                          torch.randn(16, 3, dtype=torch.float64, generator=gen)),
             ExternalLoad("toes_l", 200 * torch.randn(16, 3, dtype=torch.float64, generator=gen),
                          None, 5 * torch.randn(16, 3, dtype=torch.float64, generator=gen))]
    fast = walking.inverse_dynamics(q, qd, qdd, loads)
    _assert_same(fast, walking.inverse_dynamics(q, qd, qdd, loads, generic=True))
    # The loads really act: the result moved.
    assert (fast - walking.inverse_dynamics(q, qd, qdd)).abs().max() > 1.0


def test_traced_graph_equals_generic_and_checks_shape(walking):
    q, qd, qdd = _states(walking, 32, seed=13)
    fid = compile_inverse_dynamics(walking, 32, torch.float64, compile=False)
    _assert_same(fid(q, qd, qdd), walking.inverse_dynamics(q, qd, qdd, generic=True))
    with pytest.raises(ValueError, match="takes"):
        fid(q[:8], qd[:8], qdd[:8])
    with pytest.raises(ValueError, match="takes"):
        fid(q.float(), qd.float(), qdd.float())
