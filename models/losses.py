"""MonoMSK's training losses (paper §3.3), each a masked mean of squared errors.

Every term compares normalised quantities (z-scored with training-split statistics, see
models/data.py), so a prediction that knows nothing scores about 1 on each term and the paper's
weights γ act on comparable numbers; how that changes the paper's γ is in docs/model.md.

    Lλ    GRF per foot λ̂ vs Moco's (frames and feet with ground truth)
    Lτ    joint torques τ̂ vs Moco's
    Lq    q̂fd, the FD layer's step with τ̂, λ̂, vs the same step driven by the reference q̈
          (integrator_targets; TrainConfig.fd_target), in the kinetic-energy metric
          eᵀM(q)e / (m·H²) (default; "coordinate": each coordinate in units of its spread)
    LJ    FK(q̂fd) bony landmarks and joint centres vs FK of Lq's target, in body heights
    Lvel  the IKT's q̂ velocity (central differences) vs the reference q̇, per frame
    Lacc  the IKT's q̂ acceleration (second differences) vs the reference q̈, per frame²
(Lq, Lik, Lvel and Lacc are all in units of each coordinate's spread in the training set.)
    Lik   the IKT's q̂ vs the reference q (always on: the kinematic supervision itself)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

#: The switchable terms of the paper's Table 3; vel, acc and ik are always on.
SWITCHABLE = ("lambda", "tau", "q", "J")
TERMS = ("lambda", "tau", "q", "J", "vel", "acc", "ik")


@dataclass(frozen=True)
class LossWeights:
    """γ of each term: the paper's (γq 2e3, γJ 1e5, γτ 5, γλ 1, γv 100, γz 200, reading γz as
    the acceleration term) on our normalised terms. γik is ours (the paper leaves the IKT's own
    weight unstated): γq's value, as Lik measures the same quantity before the FD layer. The
    paper's γq works here because Lq uses the mass-matrix metric; measured per coordinate it
    outweighed Lτ and Lλ ~100-fold (docs/model.md)."""
    lam: float = 1.0
    tau: float = 5.0
    q: float = 2e3
    J: float = 1e5
    vel: float = 100.0
    acc: float = 200.0
    ik: float = 2e3

    def of(self, term: str) -> float:
        return getattr(self, "lam" if term == "lambda" else term)

    def to_dict(self) -> dict:
        return asdict(self)


def masked_mse(pred: torch.Tensor, target: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (pred - target)^2 over the elements where `mask` (broadcast to pred) is True;
    0 when nothing is valid. Zero iff pred == target on the valid elements."""
    err = (pred - target) ** 2
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype).expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def metric_mse(err: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """Mean over leading dims of errᵀ·metric·err, err (..., C), metric (..., C, C) SPD:
    zero iff err == 0."""
    return (err.unsqueeze(-2) @ metric @ err.unsqueeze(-1)).mean()


def central_velocity(q: torch.Tensor, dt: float) -> torch.Tensor:
    """dq/dt (..., T, C) along frames: central differences inside, one-sided at the ends."""
    if q.shape[-2] < 2:
        return torch.zeros_like(q)
    inner = (q[..., 2:, :] - q[..., :-2, :]) / (2 * dt)
    first = (q[..., 1:2, :] - q[..., 0:1, :]) / dt
    last = (q[..., -1:, :] - q[..., -2:-1, :]) / dt
    return torch.cat([first, inner, last], dim=-2)


def second_difference(q: torch.Tensor, dt: float) -> torch.Tensor:
    """d²q/dt² (..., T-2, C) at frames 1..T-2."""
    return (q[..., 2:, :] - 2 * q[..., 1:-1, :] + q[..., :-2, :]) / dt ** 2


def integrator_targets(q0: torch.Tensor, qd0: torch.Tensor, qdd: torch.Tensor, dt: float,
                       method: str = "semi_implicit") -> torch.Tensor:
    """Where one step of the FD layer's integrator lands when driven by the reference
    accelerations: Lq's and LJ's target. q0, qd0, qdd (..., C) rad|m, rad/s|m/s, rad/s²|m/s²;
    with qdd (..., K, C) and q0, qd0 (..., C): a K-step rollout from the one start.

    Why not the reference's next frame q_{t+1}: semi-implicit Euler with the exact q̈ reaches
    q + dt·q̇ + dt²·q̈, a dt²·q̈/2 overshoot of q_{t+1} (Taylor). On a squat that gap is larger
    than the one a 2% body-weight GRF error makes, so against q_{t+1} the loss is smallest for
    forces that give about half the true accelerations. Against this target it is zero for the
    reference τ and λ. "rk4" holds τ, λ over the step, i.e. q̈ ≈ constant: q + dt·q̇ + dt²·q̈/2.
    """
    if method not in ("semi_implicit", "rk4"):
        raise ValueError(f"unknown integrator {method!r}; use 'semi_implicit' or 'rk4'")
    half = 1.0 if method == "semi_implicit" else 0.5
    if q0.dim() == qdd.dim():
        return q0 + dt * qd0 + half * dt ** 2 * qdd
    q, qd, out = q0, qd0, []
    for k in range(qdd.shape[-2]):
        a = qdd[..., k, :]
        q = q + dt * qd + half * dt ** 2 * a
        qd = qd + dt * a
        out.append(q)
    return torch.stack(out, dim=-2)


def total_loss(terms: dict[str, torch.Tensor], weights: LossWeights,
               enabled: tuple[str, ...] | list[str]) -> torch.Tensor:
    """Σ γ_k L_k over the computed terms; switchable terms only when `enabled` names them."""
    bad = [t for t in enabled if t not in SWITCHABLE]
    if bad:
        raise ValueError(f"unknown loss switch {bad}; choose from {list(SWITCHABLE)}")
    total = None
    for name, value in terms.items():
        if name in SWITCHABLE and name not in enabled:
            continue
        part = weights.of(name) * value
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no loss term to optimise")
    return total
