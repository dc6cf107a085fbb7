"""A small warehouse that is dynamically exact by construction, for the model tests.

Subjects are built-in models; kinematics are smooth sinusoids about the default pose (21 tracked
coordinates, arms and toes held at default as in tracking), GRFs a loaded stance split over both
feet with the CoP under each calcaneus, torques from the torch inverse dynamics with those loads,
markers from the model's own forward kinematics. So the FD layer given the true τ and λ returns
the true q̈ to rounding.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.dynamics import Multibody
from models.layers import ForwardDynamicsLayer
from osim.builtin_model import build_model, write_model
from osim.export_tree import export_tree
from pipeline.trial import marker_columns
from warehouse import store

WELDED_PREFIXES = ("arm_", "elbow_", "pro_sup", "wrist_", "mtp_")
SUBJECTS = {"P01": (1.70, 65.0, "F"), "P02": (1.82, 80.0, "M"), "P03": (1.62, 58.0, "F"),
            "P04": (1.76, 72.0, "M")}
RATE_HZ = 100.0


def tracked_names(mb: Multibody) -> list[str]:
    return [c for c in mb.coordinate_names if not c.startswith(WELDED_PREFIXES)]


def subject_motion(mb: Multibody, mass: float, frames: int, seed: int):
    """(time, q, qd, qdd (F, C), contact (F, 2, 7), tau (F, C), markers (F, M, 3)), float64."""
    tracked = tracked_names(mb)
    fd = ForwardDynamicsLayer(mb, tracked)
    rng = np.random.default_rng(seed)
    t = torch.arange(frames, dtype=torch.float64) / RATE_HZ
    amp = torch.tensor([0.02 if c.endswith(("_tx", "_ty", "_tz")) else 0.15 for c in tracked],
                       dtype=torch.float64) * torch.as_tensor(rng.uniform(0.5, 1.0, len(tracked)))
    omega = 2 * np.pi * torch.as_tensor(rng.uniform(0.8, 1.5, len(tracked)))
    phase = torch.as_tensor(rng.uniform(0, 2 * np.pi, len(tracked)))
    arg = omega * t[:, None] + phase
    q = fd.default[fd.index] + amp * torch.sin(arg)
    qd = amp * omega * torch.cos(arg)
    qdd = -amp * omega ** 2 * torch.sin(arg)
    q_full = fd.full(q, fd.default)
    _, origins = mb.body_poses(q_full)
    contact = torch.zeros(frames, 2, 7, dtype=torch.float64)
    for i, foot in enumerate(("calcn_r", "calcn_l")):
        share = 0.5 + 0.1 * (1 - 2 * i) * torch.sin(2 * np.pi * t)
        contact[:, i, 1] = share * mass * 9.80665
        contact[:, i, 0] = 0.02 * mass * torch.cos(3 * t)
        origin = origins[:, mb.body_names.index(foot)]
        contact[:, i, 3] = origin[:, 0] + 0.05
        contact[:, i, 5] = origin[:, 2]
        contact[:, i, 6] = 0.3 * torch.sin(2 * t)
    tau = mb.inverse_dynamics(q_full, fd.full(qd, 0.0), fd.full(qdd, 0.0),
                              fd.external(contact))[:, fd.index]
    markers = mb.marker_positions(q_full)
    return t, q, qd, qdd, contact, tau, markers


def write_fake_warehouse(root: Path, subjects=("P01", "P02", "P03"), frames: int = 40,
                         trial: str = "squat_01") -> dict[str, Multibody]:
    """Write markers, kinematics, kinetics, subjects.parquet and trials.parquet under root;
    returns each subject's Multibody (float64)."""
    root = Path(root)
    bodies, rows = {}, []
    for k, subject in enumerate(subjects):
        height, mass, sex = SUBJECTS[subject]
        model_path = write_model(build_model(height, mass, sex, name=subject),
                                 root.parent / "models" / f"{subject}.osim")
        mb = Multibody.from_tree(export_tree(str(model_path)), torch.float64)
        bodies[subject] = mb
        t, q, qd, qdd, contact, tau, markers = subject_motion(mb, mass, frames, seed=k)
        tracked = tracked_names(mb)
        time = t.numpy()
        mk = pd.DataFrame(markers.reshape(frames, -1).numpy(),
                          columns=marker_columns(mb.marker_names))
        mk.insert(0, "time", time)
        kin = pd.DataFrame({"time": time})
        kin = pd.concat([kin, pd.DataFrame(q.numpy(), columns=tracked),
                         pd.DataFrame(qd.numpy(), columns=[f"{c}_speed" for c in tracked]),
                         pd.DataFrame(qdd.numpy(), columns=[f"{c}_accel" for c in tracked])],
                        axis=1)
        names = [c + ("_force" if c.endswith(("_tx", "_ty", "_tz")) else "_moment")
                 for c in tracked]
        kinetics = pd.concat([pd.DataFrame({"time": time}),
                              pd.DataFrame(tau.numpy(), columns=names)], axis=1)
        for i, side in enumerate("rl"):
            for j, a in enumerate("xyz"):
                kinetics[f"ground_force_{side}_v{a}"] = contact[:, i, j].numpy()
                kinetics[f"ground_force_{side}_p{a}"] = contact[:, i, 3 + j].numpy()
                kinetics[f"ground_torque_{side}_{a}"] = (contact[:, i, 6].numpy() if a == "y"
                                                         else 0.0)
        for table, df in (("markers", mk), ("kinematics", kin), ("kinetics", kinetics)):
            store.write_leaf(root, table, subject, trial, df)
        rows.append({"subject": subject, "mass_kg": mass, "height_m": height, "sex": sex,
                     "model": str(model_path)})
    pd.DataFrame(rows).to_parquet(root / "subjects.parquet")
    pd.DataFrame([{"subject": s, "trial": trial, "activity": "squat", "rate_hz": RATE_HZ,
                   "ground_truth": True} for s in subjects]).to_parquet(root / "trials.parquet")
    return bodies


_CACHE: dict[tuple, tuple[Path, dict]] = {}


def cached_warehouse(base: Path, subjects=("P01", "P02", "P03"), frames: int = 40):
    """write_fake_warehouse once per test session (building models takes seconds each)."""
    key = (tuple(subjects), frames)
    if key not in _CACHE:
        root = Path(base) / f"warehouse_{len(_CACHE)}" / "warehouse"
        _CACHE[key] = (root, write_fake_warehouse(root, subjects, frames))
    return _CACHE[key]
