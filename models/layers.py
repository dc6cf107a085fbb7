"""The physics layers of MonoMSK on one subject's `Multibody`: forward dynamics (FD, an ODE
layer integrating predicted torques and GRFs) and anatomical forward kinematics (FK: bony
landmarks and joint centres from q). Both are differentiable and batched over leading dims.

The warehouse tracks C of the model's N coordinates (the rest, arms and toes, are welded in
tracking); these layers take and return the tracked coordinates only and hold the others at the
model's default values with zero speed, i.e. they simulate the welded model exactly: the
accelerations come from the tracked rows and columns of the full mass matrix.
"""
from __future__ import annotations

import torch
from torch import nn

from models.dynamics import ExternalLoad, Multibody
from osim.markers import BONY_LANDMARKS
from pipeline.errors import ModelError


def _tracked_index(mb: Multibody, tracked: list[str]) -> list[int]:
    missing = [c for c in tracked if c not in mb.coordinate_names]
    if missing:
        raise ModelError(f"the subject's model lacks coordinates {missing}",
                         hint="train on models with the warehouse's tracked coordinates")
    return [mb.coordinate_names.index(c) for c in tracked]


MAX_ACCELERATION = 1e4  # rad/s^2 or m/s^2, see ForwardDynamicsLayer.accelerations


class _Reduced(nn.Module):
    """Shared: scatter tracked coordinates into the full vector around the default pose."""

    def __init__(self, mb: Multibody, tracked: list[str]):
        super().__init__()
        self.mb = mb
        self.tracked = list(tracked)
        self.register_buffer("index", torch.tensor(_tracked_index(mb, tracked)))
        self.register_buffer("default", mb.default_coordinates().to(torch.float64))

    def full(self, x: torch.Tensor, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
        """(..., C) tracked -> (..., N), the others `fill` (a (N,) tensor or a scalar)."""
        base = (fill.to(x.dtype) if torch.is_tensor(fill) else x.new_full((self.mb.num_coordinates,),
                                                                          fill))
        out = base.expand(*x.shape[:-1], -1).clone()
        out[..., self.index] = x
        return out


class ForwardDynamicsLayer(_Reduced):
    """x_{t+1} = ODEsolver(f_ODE, x_t, dt) with f_ODE = [q̇, M⁻¹(τ + J_cᵀλ − C − g)] (paper Eq. 5).

    τ (..., C) N·m|N on the tracked coordinates; λ (..., 2, 7) per foot (right, left), in
    ground: force (N, 3), centre of pressure (m, 3) and free moment about the vertical (N·m, 1),
    applied to that foot's calcaneus, the form of OpenSim's ExternalLoads and of the warehouse's
    GRF columns. Moco's reference is reproduced to ~1e-2 N·m this way; spreading the force over
    the contact spheres instead misplaces the CoP by centimetres and the light foot then
    accelerates at hundreds of rad/s² (docs/model.md). `method`: "semi_implicit" (paper Eq. 7:
    q̇ then q) or "rk4" (τ, λ held over the step).
    """

    def __init__(self, mb: Multibody, tracked: list[str], method: str = "semi_implicit"):
        super().__init__(mb, tracked)
        if method not in ("semi_implicit", "rk4"):
            raise ValueError(f"unknown integrator {method!r}; use 'semi_implicit' or 'rk4'")
        self.method = method
        missing = [b for b in ("calcn_r", "calcn_l") if b not in mb.body_names]
        if missing:
            raise ModelError(f"the model has no foot bodies {missing} to apply the GRF to")

    @staticmethod
    def external(contact: torch.Tensor) -> list[ExternalLoad]:
        """λ (..., 2, 7) -> ExternalLoads on calcn_r, calcn_l."""
        zero = torch.zeros_like(contact[..., 0, 6])
        loads = []
        for i, side in enumerate("rl"):
            c = contact[..., i, :]
            torque = torch.stack([zero, c[..., 6], zero], dim=-1)
            loads.append(ExternalLoad(f"calcn_{side}", c[..., 0:3], c[..., 3:6], torque))
        return loads

    def mass_matrix(self, q: torch.Tensor) -> torch.Tensor:
        """Mass matrix of the tracked coordinates (..., C, C), others at default."""
        mass = self.mb.mass_matrix(self.full(q, self.default))
        return mass[..., self.index, :][..., :, self.index]

    def accelerations(self, q, qd, tau, contact) -> torch.Tensor:
        """q̈ (..., C) of the tracked coordinates."""
        q_full = self.full(q, self.default)
        qd_full = self.full(qd, 0.0)
        bias = self.mb.bias_forces(q_full, qd_full, self.external(contact))
        mass = self.mass_matrix(q)  # (..., C, C)
        rhs = tau - bias[..., self.index]
        # Jacobi scaling keeps the Cholesky solve accurate (see Multibody.forward_dynamics).
        d = mass.diagonal(dim1=-2, dim2=-1).rsqrt()
        scaled = mass * d.unsqueeze(-1) * d.unsqueeze(-2)
        chol, info = torch.linalg.cholesky_ex(scaled)
        if bool((info != 0).any()):
            # A multi-frame rollout driven by early, poor predictions can leave the model's
            # configuration space (NaN, or a mass matrix no longer positive definite): those
            # samples fall back to the diagonal (identity after scaling) instead of stopping
            # the training run; their loss stays large, so they still teach.
            broken = (info != 0) | ~torch.isfinite(scaled).all(-1).all(-1)
            eye = torch.eye(scaled.shape[-1], dtype=scaled.dtype, device=scaled.device)
            scaled = torch.where(broken[..., None, None], eye, torch.nan_to_num(scaled))
            chol = torch.linalg.cholesky(scaled)
        qdd = torch.cholesky_solve((rhs * d).unsqueeze(-1), chol).squeeze(-1) * d
        # Bounded so that a diverging rollout gives a large but finite loss (1e4 rad/s^2 is
        # two orders beyond any human motion).
        return torch.nan_to_num(qdd).clamp(-MAX_ACCELERATION, MAX_ACCELERATION)

    def step(self, q, qd, tau, contact, dt: float):
        """One step of length dt from (q, q̇) (..., C); returns (q', q̇', q̈ at the start)."""
        if self.method == "semi_implicit":
            qdd = self.accelerations(q, qd, tau, contact)
            qd_next = qd + dt * qdd
            return q + dt * qd_next, qd_next, qdd
        k1v = self.accelerations(q, qd, tau, contact)
        k2q = qd + dt / 2 * k1v
        k2v = self.accelerations(q + dt / 2 * qd, k2q, tau, contact)
        k3q = qd + dt / 2 * k2v
        k3v = self.accelerations(q + dt / 2 * k2q, k3q, tau, contact)
        k4q = qd + dt * k3v
        k4v = self.accelerations(q + dt * k3q, k4q, tau, contact)
        q_next = q + dt / 6 * (qd + 2 * k2q + 2 * k3q + k4q)
        qd_next = qd + dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
        return q_next, qd_next, k1v

    def single_frame(self, q, qd, tau, contact, dt: float):
        """Single-frame-out: from the states of frames t (..., C) one step each, with that
        frame's τ (..., C) and λ (..., 2, 7); returns q̂fd, q̂̇fd of frame t+1 and q̈fd."""
        return self.step(q, qd, tau, contact, dt)

    def multi_frame(self, q0, qd0, tau, contact, dt: float):
        """Multi-frame-out: roll out from the state of frame 0 (..., C) with the window's
        τ (..., T, C) and λ (..., T, 2, 7); returns q̂fd, q̂̇fd, q̈fd (..., T-1, C)."""
        qs, qds, qdds = [], [], []
        q, qd = q0, qd0
        for t in range(tau.shape[-2] - 1):
            q, qd, qdd = self.step(q, qd, tau[..., t, :], contact[..., t, :, :], dt)
            qs.append(q)
            qds.append(qd)
            qdds.append(qdd)
        return torch.stack(qs, -2), torch.stack(qds, -2), torch.stack(qdds, -2)


class AnatomicalFK(_Reduced):
    """J(q): the model's bony-landmark markers (those of osim.markers.BONY_LANDMARKS it has)
    and its joint centres (body origins: OpenSim puts each child body's origin at its joint),
    (..., P, 3) m in ground, from the tracked coordinates (..., C)."""

    def __init__(self, mb: Multibody, tracked: list[str]):
        super().__init__(mb, tracked)
        names = mb.marker_names
        self.landmarks = [m for m in BONY_LANDMARKS if m in names]
        self.register_buffer("landmark_index",
                             torch.tensor([names.index(m) for m in self.landmarks],
                                          dtype=torch.long))
        self.joint_centres = mb.body_names

    @property
    def point_names(self) -> list[str]:
        return self.landmarks + [f"{b}_origin" for b in self.joint_centres]

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        q_full = self.full(q, self.default)
        landmarks = self.mb.marker_positions(q_full)[..., self.landmark_index, :]
        _, origins = self.mb.body_poses(q_full)
        return torch.cat([landmarks, origins], dim=-2)  # (..., P, 3)
