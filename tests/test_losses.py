"""MonoMSK's loss terms: each is zero when the prediction equals its target and positive
otherwise, through the same code the trainer runs (Stepper.terms) on a batch whose motion is
linear in time, so finite differences and one semi-implicit Euler step are exact."""
import numpy as np
import pytest
import torch
from fake_cohort import cached_warehouse, tracked_names

from models.config import make_config
from models.data import GRAVITY, Normalizer, Windows
from models.layers import ForwardDynamicsLayer
from models.losses import LossWeights, central_velocity, masked_mse, second_difference, total_loss
from models.training import Physics, Stepper, normalise_contact

T, DT = 4, 0.01


def test_masked_mse_zero_iff_equal_on_valid_elements():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert masked_mse(a, a.clone()) == 0
    b = a.clone()
    b[1, 1] = 6.0
    assert masked_mse(a, b) == pytest.approx(1.0)               # 4 / 4 elements
    mask = torch.tensor([[True], [False]])
    assert masked_mse(a, b, mask) == 0                           # the error is masked out
    assert masked_mse(a, b, torch.tensor([[False], [True]])) == pytest.approx(2.0)
    assert masked_mse(a, b, torch.zeros(2, 1, dtype=torch.bool)) == 0


def test_finite_differences_are_exact_where_they_should_be():
    t = torch.arange(7, dtype=torch.float64)[:, None] * DT
    line = 0.3 + 2.0 * t
    assert torch.allclose(central_velocity(line, DT), torch.full_like(line, 2.0))
    cubic = 1.0 + t - 3.0 * t ** 2 + 5.0 * t ** 3
    assert torch.allclose(second_difference(cubic, DT), (-6.0 + 30.0 * t)[1:-1])
    quad = t ** 2
    assert torch.allclose(central_velocity(quad, DT)[1:-1], 2 * t[1:-1])


def test_total_loss_switches_terms():
    terms = {"tau": torch.tensor(2.0), "q": torch.tensor(3.0), "ik": torch.tensor(1.0)}
    w = LossWeights(tau=5.0, q=7.0, ik=11.0)
    assert total_loss(terms, w, ["tau", "q"]) == pytest.approx(5 * 2 + 7 * 3 + 11 * 1)
    assert total_loss(terms, w, ["q"]) == pytest.approx(7 * 3 + 11 * 1)
    assert total_loss(terms, w, []) == pytest.approx(11 * 1)    # kinematics only
    with pytest.raises(ValueError, match="unknown loss"):
        total_loss(terms, w, ["torque"])


def _unit_normalizer(m: int, c: int) -> Normalizer:
    z, o = np.zeros, np.ones
    return Normalizer(z((m, 3)), o((m, 3)), z(c), o(c) * 0.1, o(c), o(c), z(c), o(c),
                      z((2, 3)), o((2, 3)), z((2, 3)), o((2, 3)), z(2), o(2), [3, 5])


@pytest.fixture(scope="module")
def linear_batch(tmp_path_factory):
    """Two windows of a motion linear in time (q̈ = 0), with exact τ for a loaded stance."""
    _, bodies = cached_warehouse(tmp_path_factory.mktemp("losses"))
    mb = bodies["P01"]
    tracked = tracked_names(mb)
    fd = ForwardDynamicsLayer(mb, tracked)
    t = torch.arange(T, dtype=torch.float64)[:, None] * DT
    rate = torch.linspace(-0.5, 0.5, len(tracked), dtype=torch.float64)
    q = torch.stack([fd.default[fd.index] + rate * t, fd.default[fd.index] - rate * t])
    qd = torch.stack([rate, -rate])[:, None, :].expand_as(q).clone()
    qdd = torch.zeros_like(q)
    mass = 65.0
    contact = torch.zeros(2, T, 2, 7, dtype=torch.float64)
    contact[..., 1] = 0.5 * mass * GRAVITY
    contact[..., 3] = torch.tensor([0.1, 0.1])
    contact[..., 5] = torch.tensor([0.09, -0.09])
    tau = mb.inverse_dynamics(fd.full(q, fd.default), fd.full(qd, 0.0), fd.full(qdd, 0.0),
                              fd.external(contact))[..., fd.index]
    root = torch.zeros(2, 3, dtype=torch.float64)
    w = Windows(subject="P01", markers=torch.zeros(2, T, 4, 3, dtype=torch.float64), root=root,
                q=q, qd=qd, qdd=qdd, tau=tau, grf=contact[..., :3], cop=contact[..., 3:6],
                free_torque=contact[..., 6], frame_ok=torch.ones(2, T, dtype=torch.bool),
                foot_ok=torch.ones(2, T, 2, dtype=torch.bool), mass_kg=mass, height_m=1.7,
                dt=DT)
    idx = torch.arange(2)
    batch = {**w.take(idx), "index": idx}
    norm = _unit_normalizer(4, len(tracked))
    return mb, tracked, w, batch, norm


@pytest.mark.parametrize("output, metric", [("single", "mass"), ("multi", "coordinate")])
def test_every_term_is_zero_for_exact_predictions_and_positive_otherwise(linear_batch, output,
                                                                          metric):
    mb, tracked, w, batch, norm = linear_batch
    cfg = make_config("tiny", output=output, fd_frames=0, lq_metric=metric)
    stepper = Stepper(cfg, norm, net=None, physics={"P01": Physics(mb, tracked, cfg.integrator)})
    n = stepper.n
    exact = {
        "q_n_hat": (stepper.relative_q(batch["q"], batch["root"]) - n["q_mean"]) / n["q_std"],
        "q_hat": batch["q"], "qd_hat": batch["qd"],
        "tau_n": (batch["tau"] / batch["mass_kg"] - n["tau_mean"]) / n["tau_std"],
        "contact_n": normalise_contact(n, batch, batch["mass_kg"]),
        "tau": batch["tau"],
        "contact": torch.cat([batch["grf"], batch["cop"], batch["free_torque"][..., None]], -1),
    }
    stepper.predict = lambda batch, markers, phase: exact
    gen = torch.Generator().manual_seed(0)
    terms = stepper.terms(batch, w, "gt_embed", gen, augment=False)
    assert set(terms) == {"ik", "vel", "acc", "tau", "lambda", "q", "J"}
    for name, value in terms.items():
        assert float(value) < 1e-12, (name, float(value))
    # Perturb each prediction: its own term (at least) becomes positive.
    for key, terms_hit in (("q_n_hat", ["ik"]), ("q_hat", ["acc"]), ("qd_hat", ["vel"]),
                           ("tau_n", ["tau"]), ("contact_n", ["lambda"]),
                           ("tau", ["q", "J"]), ("contact", ["q", "J"])):
        bumped = dict(exact)
        x = exact[key]
        in_time = (1.0 + torch.arange(T, dtype=x.dtype) ** 2).view(1, T, *[1] * (x.dim() - 2))
        bumped[key] = x + 0.01 * torch.ones_like(x).cumsum(-1) * in_time
        stepper.predict = lambda batch, markers, phase, b=bumped: b
        hit = stepper.terms(batch, w, "gt_embed", gen, augment=False)
        for name in terms_hit:
            assert float(hit[name]) > 1e-9, (key, name, float(hit[name]))
