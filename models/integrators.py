"""Time integration of multibody dynamics: an ODE module (forward(t, y), torchdiffeq-style) and
fixed-step RK4 / semi-implicit Euler steps. States are y = [q, qd] (..., 2N) in OpenSim's
coordinate order; time in s."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models.dynamics import Multibody

# tau(t, q, qd) -> (..., N) generalized forces, or a fixed tensor.
TorqueSource = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | torch.Tensor


class MultibodyODE(nn.Module):
    """dy/dt = [qd, M^-1 (tau - C - g + J^T f_ext)] for y = [q, qd].

    `tau` is a tensor (..., N) held constant, or a callable tau(t, q, qd); `external` is an
    optional callable external(t, q, qd) -> list of ExternalLoad (e.g. a contact model).
    """

    def __init__(self, multibody: Multibody, tau: TorqueSource,
                 external: Callable | None = None):
        super().__init__()
        self.multibody = multibody
        self.tau = tau
        self.external = external

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.multibody.num_coordinates
        return y[..., :n], y[..., n:]

    def accelerations(self, t: torch.Tensor, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        tau = self.tau(t, q, qd) if callable(self.tau) else self.tau
        loads = self.external(t, q, qd) if self.external is not None else None
        return self.multibody.forward_dynamics(q, qd, tau, loads)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        q, qd = self.split(y)
        return torch.cat([qd, self.accelerations(t, q, qd)], dim=-1)


def rk4_step(func: Callable, t: torch.Tensor | float, y: torch.Tensor,
             dt: float) -> torch.Tensor:
    """One classical Runge-Kutta step of dy/dt = func(t, y) from t to t + dt."""
    k1 = func(t, y)
    k2 = func(t + dt / 2, y + dt / 2 * k1)
    k3 = func(t + dt / 2, y + dt / 2 * k2)
    k4 = func(t + dt, y + dt * k3)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def semi_implicit_euler_step(ode: MultibodyODE, t: torch.Tensor | float, y: torch.Tensor,
                             dt: float) -> torch.Tensor:
    """Symplectic Euler: qd' = qd + dt * qdd(q, qd), then q' = q + dt * qd'."""
    q, qd = ode.split(y)
    qd_next = qd + dt * ode.accelerations(torch.as_tensor(t), q, qd)
    return torch.cat([q + dt * qd_next, qd_next], dim=-1)


def integrate(func: Callable, y0: torch.Tensor, t0: float, dt: float, steps: int,
              method: str = "rk4") -> torch.Tensor:
    """Fixed-step trajectory (steps + 1, ..., 2N) from y0; method 'rk4' or 'semi_implicit'."""
    ys, y = [y0], y0
    for k in range(steps):
        t = t0 + k * dt
        if method == "rk4":
            y = rk4_step(func, t, y, dt)
        elif method == "semi_implicit":
            y = semi_implicit_euler_step(func, t, y, dt)
        else:
            raise ValueError(f"unknown method {method!r}; use 'rk4' or 'semi_implicit'")
        ys.append(y)
    return torch.stack(ys)
