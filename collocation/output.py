"""Solution -> the tables `osim/extract.py` writes for Moco: same names, units and layout.

kinematics: q, `<c>_speed`, `<c>_accel` of the optimized coordinates (rad, m, per s, per s^2).
kinetics: `<c>_moment` (N*m) / `<c>_force` (N) from actuator controls x optimal force (pelvis
columns are the residuals), then per foot `ground_force_<s>_v{x,y,z}` (N),
`ground_force_<s>_p{x,y,z}` (m, centre of pressure on the floor, NaN below 1 N vertical) and
`ground_torque_<s>_{x,y,z}` (N*m about the CoP: x and z zero, y the free moment), as
`osim.extract.grf_table` gives them from `createExternalLoadsTableForGait`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import IngestError
from pipeline.opensim_files import read_sto

from .dynamics import ModelSetup

UNLOADED_N = 1.0  # osim/extract.py: below this vertical force the CoP is undefined


def kinematics_table(setup: ModelSetup, times, q, qd, qdd) -> pd.DataFrame:
    names = setup.free_names
    data = {**{n: q[:, i] for i, n in enumerate(names)},
            **{f"{n}_speed": qd[:, i] for i, n in enumerate(names)},
            **{f"{n}_accel": qdd[:, i] for i, n in enumerate(names)}}
    return pd.DataFrame(data, index=pd.Index(times, name="time"))


def actuator_table(setup: ModelSetup, times, u) -> pd.DataFrame:
    motion = {c["name"]: c["motion_type"] for c in setup.tree.description["coordinates"]}
    out: dict[str, np.ndarray] = {}
    for a, c in enumerate(setup.actuator_coordinate):
        name = setup.free_names[c]
        col = name + ("_force" if motion[name] == "translational" else "_moment")
        out[col] = out.get(col, 0.0) + u[:, a] * setup.optimal_force[a]
    return pd.DataFrame(out, index=pd.Index(times, name="time"))


def foot_side(body_name: str) -> str:
    side = body_name.rsplit("_", 1)[-1]
    if side not in ("r", "l"):
        raise ValueError(f"contact sphere on body {body_name}, which names no side (_r or _l)")
    return side


def grf_table(setup: ModelSetup, times, forces, points) -> pd.DataFrame:
    """forces, points: (P, 3, S) sphere forces on the feet and their contact points, ground.
    The floor is taken as y = 0 with +y up (the contact half-space of osim/contact.py)."""
    sides = np.array([foot_side(setup.tree.body_names[s.body]) for s in setup.spheres])
    out = {}
    for side in ("r", "l"):
        pick = sides == side
        f = forces[:, :, pick].sum(axis=2)                                  # (P, 3)
        m = np.cross(np.moveaxis(points[:, :, pick], 1, 2),
                     np.moveaxis(forces[:, :, pick], 1, 2)).sum(axis=1)     # about the origin
        fy = f[:, 1]
        loaded = fy >= UNLOADED_N
        safe = np.where(loaded, fy, 1.0)
        px, pz = m[:, 2] / safe, -m[:, 0] / safe
        ty = m[:, 1] - (pz * f[:, 0] - px * f[:, 2])
        for k, axis in enumerate("xyz"):
            out[f"ground_force_{side}_v{axis}"] = f[:, k]
        out[f"ground_force_{side}_px"] = np.where(loaded, px, np.nan)
        out[f"ground_force_{side}_py"] = np.where(loaded, 0.0, np.nan)
        out[f"ground_force_{side}_pz"] = np.where(loaded, pz, np.nan)
        out[f"_torque_{side}"] = np.where(loaded, ty, 0.0)
    table = {k: v for k, v in out.items() if not k.startswith("_")}
    for side in ("r", "l"):
        table[f"ground_torque_{side}_x"] = np.zeros(len(times))
        table[f"ground_torque_{side}_y"] = out[f"_torque_{side}"]
        table[f"ground_torque_{side}_z"] = np.zeros(len(times))
    return pd.DataFrame(table, index=pd.Index(times, name="time"))


def read_solution(folder, setup: ModelSetup, times) -> dict:
    """A solved window's tables (`kinematics.sto`, `kinetics.sto` in `folder`, as either engine
    writes them) on `times`: {'q', 'qd', 'qdd', 'tau'}, each (P, nf); tau is the generalized
    force of each coordinate's actuators (0 where the table has none). The warm start of
    `Window.guess`. Linear interpolation where the grids differ."""
    folder = Path(folder)
    kinematics, kinetics = (read_sto(folder / f"{name}.sto") for name in ("kinematics",
                                                                           "kinetics"))
    names = setup.free_names
    wanted = names + [f"{n}_{kind}" for kind in ("speed", "accel") for n in names]
    missing = [c for c in wanted if c not in kinematics.columns]
    if missing:
        raise IngestError(f"the warm-start guess lacks columns {missing[:5]}",
                          file=folder / "kinematics.sto",
                          hint="give the folder of a solution of the same model and window")

    def at(table, column):
        return np.interp(times, table.index.to_numpy(), table[column].to_numpy())

    out = {key: np.stack([at(kinematics, n + suffix) for n in names], axis=1)
           for key, suffix in (("q", ""), ("qd", "_speed"), ("qdd", "_accel"))}
    forces = [next((c for c in (f"{n}_moment", f"{n}_force") if c in kinetics.columns), None)
              for n in names]
    out["tau"] = np.stack([at(kinetics, c) if c else np.zeros(len(times)) for c in forces],
                          axis=1)
    return out
