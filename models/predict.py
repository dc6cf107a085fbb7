"""Kinematics and kinetics of a new trial from a trained MonoMSK checkpoint.

    predictor = Predictor.load("data/artifacts/TrainModel/nightly/<hash>/checkpoint.pt")
    out = predictor.predict(markers, {"mass_kg": 72.6, "height_m": 1.80})
    out["kinematics"], out["kinetics"]   # warehouse column names, SI units, marker frames

Inference is IKT -> IDT on predicted embeddings (the physics layers shape training only).
Windows of T frames slide over the whole trial one frame at a time and each frame's outputs are
averaged over the windows that contain it; a trial shorter than T is padded with its edge
frames. Speeds and accelerations are the numerical derivatives of the averaged q.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.config import TrainConfig
from models.data import AXES, GRAVITY, SIDES, Normalizer, window_root
from models.losses import central_velocity
from models.networks import MonoMSKNet, NetConfig
from models.training import denormalise_kinetics
from pipeline.errors import ModelError
from warehouse.schema import TRANSLATIONAL_SUFFIXES

BATCH = 256  # windows per forward pass


def torque_name(coordinate: str) -> str:
    return coordinate + ("_force" if coordinate.endswith(TRANSLATIONAL_SUFFIXES) else "_moment")


class Predictor:
    """A trained network with its normalisation, rebuilt from the checkpoint alone."""

    def __init__(self, state: dict):
        self.config: dict = state["config"]
        self.split: dict[str, list[str]] = state["split"]
        self.coordinate_names: list[str] = list(state["coordinate_names"])
        self.marker_names: list[str] = list(state["marker_names"])
        self.train_config = TrainConfig.from_dict(self.config)
        self.norm = Normalizer.from_dict(state["normalizer"])
        self.n = self.norm.tensors()
        self.net = MonoMSKNet(NetConfig(**state["net"]))
        self.net.load_state_dict(state["model"])
        self.net.eval()

    @classmethod
    def load(cls, checkpoint: str | Path) -> Predictor:
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            raise ModelError("checkpoint not found", file=checkpoint,
                             hint="train first: luigi --module tasks TrainModel --run-name NAME")
        return cls(torch.load(checkpoint, map_location="cpu", weights_only=False))

    def _marker_array(self, markers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(time (F,), markers (F, M, 3)) in the checkpoint's marker order; NaN if absent."""
        if "time" in markers.columns:
            time = markers["time"].to_numpy(float)
        elif markers.index.name == "time":
            time = markers.index.to_numpy(float)
        else:
            raise ModelError("markers need a `time` column or index (s)")
        order = np.argsort(time, kind="stable")
        df, time = markers.iloc[order], time[order]
        present = [m for m in self.marker_names if f"{m}_x" in df.columns]
        if len(present) < max(3, len(self.marker_names) // 2):
            raise ModelError(f"the trial has {len(present)} of the model's "
                             f"{len(self.marker_names)} markers",
                             hint=f"expected names such as {self.marker_names[:6]}")
        out = np.full((len(df), len(self.marker_names), 3), np.nan)
        for i, m in enumerate(self.marker_names):
            if m in present:
                out[:, i] = df[[f"{m}_x", f"{m}_y", f"{m}_z"]].to_numpy(float)
        return time, out

    @torch.no_grad()
    def predict_arrays(self, markers: np.ndarray, dt: float, mass_kg: float):
        """markers (F, M, 3) m -> q (F, C), τ (F, C) N·m|N, λ (F, 2, 7): force N, CoP m,
        free moment N·m (models.training.denormalise_kinetics)."""
        T = self.train_config.window
        F = markers.shape[0]
        if F < 1:
            raise ModelError("the trial has no frames")
        padded = markers if F >= T else np.concatenate(
            [markers, np.repeat(markers[-1:], T - F, axis=0)])
        starts = np.arange(padded.shape[0] - T + 1)
        n = self.n
        C = len(self.coordinate_names)
        acc_q = torch.zeros(padded.shape[0], C, dtype=torch.float64)
        acc_tau = torch.zeros_like(acc_q)
        acc_grf = torch.zeros(padded.shape[0], 2, 7, dtype=torch.float64)
        count = torch.zeros(padded.shape[0], 1, dtype=torch.float64)
        root_q = self.norm.root_q
        for b in range(0, len(starts), BATCH):
            s = starts[b:b + BATCH]
            win = np.stack([padded[i:i + T] for i in s])                 # (B, T, M, 3)
            root = np.stack([window_root(w) for w in win])                # (B, 3)
            x = torch.as_tensor(win - root[:, None, None], dtype=torch.float32)
            x = torch.nan_to_num((x - n["marker_mean"]) / n["marker_std"])
            q_n = self.net.inverse_kinematics(x)                          # (B, T, C)
            q = q_n * n["q_std"] + n["q_mean"]
            q[..., root_q] += torch.as_tensor(root[:, None, [0, 2]][..., :len(root_q)],
                                              dtype=torch.float32)
            qd = central_velocity(q, dt)
            tau_n, contact_n = self.net.inverse_dynamics(q_n, qd / n["qd_std"])
            tau, grf = denormalise_kinetics(n, tau_n, contact_n, mass_kg,
                                            torch.as_tensor(root, dtype=torch.float32))
            for j, i in enumerate(s):
                acc_q[i:i + T] += q[j].double()
                acc_tau[i:i + T] += tau[j].double()
                acc_grf[i:i + T] += grf[j].double()
                count[i:i + T] += 1
        q = (acc_q / count)[:F].numpy()
        tau = (acc_tau / count)[:F].numpy()
        grf = (acc_grf / count.unsqueeze(-1))[:F].numpy()
        return q, tau, grf

    @staticmethod
    def _contact_columns(contact: np.ndarray, mass_kg: float) -> dict[str, np.ndarray]:
        """λ (F, 2, 7) -> the warehouse's GRF columns; CoP NaN under an unloaded foot (vertical
        force below 1% body weight), as the warehouse writes it."""
        out = {}
        for i, side in enumerate(SIDES):
            c = contact[:, i]
            unloaded = c[:, 1] < 0.01 * mass_kg * GRAVITY
            for j, a in enumerate(AXES):
                out[f"ground_force_{side}_v{a}"] = c[:, j]
            for j, a in enumerate(AXES):
                out[f"ground_force_{side}_p{a}"] = np.where(unloaded, np.nan, c[:, 3 + j])
            out[f"ground_torque_{side}_x"] = np.zeros(len(c))
            out[f"ground_torque_{side}_y"] = c[:, 6]
            out[f"ground_torque_{side}_z"] = np.zeros(len(c))
        return out

    def predict(self, markers: pd.DataFrame, subject: dict) -> dict[str, pd.DataFrame]:
        """One trial's marker rows (time + `<M>_x/_y/_z`, m) and its subject (mass_kg, ...)
        -> {"kinematics", "kinetics"} DataFrames with a `time` column, warehouse names."""
        mass = subject.get("mass_kg")
        if mass is None or not np.isfinite(float(mass)) or float(mass) <= 0:
            raise ModelError(f"subject mass_kg must be a positive number, not {mass!r}")
        time, arr = self._marker_array(markers)
        dt = float(np.median(np.diff(time))) if len(time) > 1 else 0.01
        q, tau, grf = self.predict_arrays(arr, dt, float(mass))
        if len(time) > 2:
            qd = np.gradient(q, time, axis=0)
            qdd = np.gradient(qd, time, axis=0)
        else:
            qd = qdd = np.zeros_like(q)
        names = self.coordinate_names
        kin = pd.DataFrame({"time": time})
        kin = pd.concat([kin, pd.DataFrame(q, columns=names),
                         pd.DataFrame(qd, columns=[f"{c}_speed" for c in names]),
                         pd.DataFrame(qdd, columns=[f"{c}_accel" for c in names])], axis=1)
        kinetics = pd.concat([pd.DataFrame({"time": time}),
                              pd.DataFrame(tau, columns=[torque_name(c) for c in names]),
                              pd.DataFrame(self._contact_columns(grf, float(mass)))], axis=1)
        return {"kinematics": kin, "kinetics": kinetics}
