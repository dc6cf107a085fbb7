"""Lq's target: where the FD layer's integrator lands with the reference accelerations.

On a motion that accelerates (the fake cohort's sinusoids, dynamically exact), the reference τ
and λ must score Lq = LJ = 0; against the reference's next frame they do not (semi-implicit
Euler overshoots q_{t+1} by dt²·q̈/2), which is what made Lq pull the kinetics off the truth.
"""
import pytest
import torch
from fake_cohort import cached_warehouse

from models.config import make_config
from models.data import Normalizer, load_cohort, make_windows
from models.losses import integrator_targets
from models.training import Physics, Stepper, normalise_contact

DT = 0.01


def test_integrator_targets_follow_each_scheme_exactly():
    g = torch.Generator().manual_seed(0)
    q0, qd0 = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g,
                                                                                  dtype=torch.float64)
    qdd = torch.randn(3, 5, generator=g, dtype=torch.float64)
    # Single step, semi-implicit Euler: q̇' = q̇ + dt·q̈, q' = q + dt·q̇'.
    assert torch.allclose(integrator_targets(q0, qd0, qdd, DT), q0 + DT * (qd0 + DT * qdd))
    # Constant acceleration rolled out: rk4 lands on the exact parabola, semi-implicit Euler on
    # q0 + t·q̇0 + dt²·q̈·k(k+1)/2 (its known first-order overshoot).
    steps = 7
    const = qdd[:, None, :].expand(3, steps, 5)
    k = torch.arange(1, steps + 1, dtype=torch.float64)[None, :, None]
    t = k * DT
    parabola = q0[:, None] + t * qd0[:, None] + 0.5 * t ** 2 * qdd[:, None]
    assert torch.allclose(integrator_targets(q0, qd0, const, DT, "rk4"), parabola, atol=1e-14)
    euler = q0[:, None] + t * qd0[:, None] + DT ** 2 * qdd[:, None] * k * (k + 1) / 2
    assert torch.allclose(integrator_targets(q0, qd0, const, DT), euler, atol=1e-14)
    with pytest.raises(ValueError, match="integrator"):
        integrator_targets(q0, qd0, qdd, DT, "euler")


@pytest.fixture(scope="module")
def cohort_batch(tmp_path_factory):
    root, bodies = cached_warehouse(tmp_path_factory.mktemp("fd_target"))
    cohort = load_cohort(root)
    subject = cohort.subject_ids[0]
    norm = Normalizer.fit(cohort, [subject], 8)
    w = make_windows(cohort, [subject], 8, 8)[0]
    idx = torch.arange(min(len(w), 4))
    batch = {**w.take(idx), "index": idx}
    physics = {subject: Physics(bodies[subject], cohort.coordinate_names, "semi_implicit")}
    return w, batch, norm, physics


def _exact(stepper: Stepper, batch: dict) -> dict:
    """The trainer's prediction dict holding the reference itself (τ, λ in float64)."""
    n = stepper.n
    root = batch["root"]
    cop = batch["cop"] + root[:, None, None, :]            # ground frame, as the FD layer takes
    contact = torch.cat([batch["grf"], torch.nan_to_num(cop), batch["free_torque"][..., None]], -1)
    return {"q_n_hat": (stepper.relative_q(batch["q"], root) - n["q_mean"]) / n["q_std"],
            "q_hat": batch["q"], "qd_hat": batch["qd"],
            "tau_n": (batch["tau"] / batch["mass_kg"] - n["tau_mean"]) / n["tau_std"],
            "contact_n": normalise_contact(n, batch, batch["mass_kg"]),
            "tau": batch["tau"].double(), "contact": contact.double()}


def _physics_terms(cohort_batch, output: str, fd_target: str) -> dict[str, float]:
    w, batch, norm, physics = cohort_batch
    cfg = make_config("tiny", output=output, fd_frames=0, fd_target=fd_target)
    stepper = Stepper(cfg, norm, net=None, physics=physics)
    b = {**batch, **{k: batch[k].double() for k in ("q", "qd", "qdd")}}
    terms = stepper.physics_terms(b, w, _exact(stepper, b), "gt_embed",
                                  torch.Generator().manual_seed(0))
    return {k: float(v) for k, v in terms.items()}


def test_reference_kinetics_score_zero_against_the_integrator_target(cohort_batch):
    ours = _physics_terms(cohort_batch, "single", "reference")
    literal = _physics_terms(cohort_batch, "single", "next_frame")
    # float32 windows: the FD layer reproduces the reference q̈ to ~1e-4 relative.
    assert ours["q"] < 1e-3 * literal["q"], (ours, literal)
    assert ours["J"] < 1e-3 * literal["J"], (ours, literal)
    assert literal["q"] > 1e-12 and literal["J"] > 1e-12


def test_multi_frame_out_keeps_the_reference_frames(cohort_batch):
    # A rollout with the true τ drifts from the reference q̈'s rollout about as much as from the
    # reference frames, so multi-frame-out compares with the frames whatever fd_target says.
    assert (_physics_terms(cohort_batch, "multi", "reference")
            == _physics_terms(cohort_batch, "multi", "next_frame"))


@pytest.mark.parametrize("lj_to_forces", [True, False])
def test_lj_reaches_the_forces_only_when_asked(cohort_batch, lj_to_forces):
    """lj_to_forces=False: LJ's gradient stops at τ̂, λ̂ but still reaches the IKT's state (the
    predicted-embedding phase's start); Lq's reaches the forces either way."""
    w, batch, norm, physics = cohort_batch
    cfg = make_config("tiny", fd_frames=0, fd_target="next_frame", lj_to_forces=lj_to_forces)
    stepper = Stepper(cfg, norm, net=None, physics=physics)
    b = {**batch, **{k: batch[k].double() for k in ("q", "qd", "qdd")}}
    p = _exact(stepper, b)
    leaves = {k: p[k].clone().requires_grad_(True) for k in ("tau", "contact", "q_hat")}
    p = {**p, **leaves, "qd_hat": b["qd"]}
    terms = stepper.physics_terms(b, w, p, "pred_embed", torch.Generator().manual_seed(0))
    grads = torch.autograd.grad(terms["J"], [leaves["tau"], leaves["contact"], leaves["q_hat"]],
                                allow_unused=True, retain_graph=True)
    to_forces = [g is not None and float(g.abs().sum()) > 0 for g in grads[:2]]
    assert to_forces == [lj_to_forces, lj_to_forces]
    assert float(grads[2].abs().sum()) > 0          # the start state: the IKT's path
    lq = torch.autograd.grad(terms["q"], [leaves["tau"]])[0]
    assert float(lq.abs().sum()) > 0
