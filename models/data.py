"""Training data for MonoMSK: warehouse trials -> windows of T frames, split by subject.

    cohort = load_cohort("data/warehouse")            # every trial with Moco ground truth
    split = split_subjects(cohort.subject_ids, seed=0)  # {"train": [...], "val": [...], "test": [...]}
    norm = Normalizer.fit(cohort, split["train"])
    windows = make_windows(cohort, split["train"], T=16, stride=2, norm=norm)

Per frame: markers (M, 3) m (inputs), and the Moco reference q, q̇, q̈ (C tracked coordinates,
rad or m), joint torques τ (C, N·m or N) and per-foot GRF λ (2, 3) N (targets). Normalisation
(choices, see docs/model.md): marker positions are taken relative to a per-window horizontal
root (the window's mean marker centroid in x and z; height is kept, it matters for squats and
the vertical GRF) and the root is subtracted from pelvis_tx/pelvis_tz too, then every channel is
z-scored with training-split statistics; τ is divided by body mass and λ by body weight before
z-scoring, so subjects of different size share one output scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.errors import ModelError
from pipeline.trial import marker_names as names_of_markers
from warehouse import store

GRAVITY = 9.80665  # m/s^2, OpenSim's default gravity magnitude
SIDES = ("r", "l")
AXES = ("x", "y", "z")
ROOT_TRANSLATIONS = ("pelvis_tx", "pelvis_tz")  # horizontal root: taken relative to the window


def grf_columns() -> list[str]:
    return [f"ground_force_{s}_v{a}" for s in SIDES for a in AXES]


def cop_columns() -> list[str]:
    return [f"ground_force_{s}_p{a}" for s in SIDES for a in AXES]


def free_torque_columns() -> list[str]:
    return [f"ground_torque_{s}_y" for s in SIDES]


def torque_column(coordinate: str, columns) -> str:
    """OpenSim's ID naming: `<c>_moment` for rotations, `<c>_force` for translations."""
    for suffix in ("_moment", "_force"):
        if coordinate + suffix in columns:
            return coordinate + suffix
    raise ModelError(f"kinetics has no torque column for coordinate {coordinate!r}",
                     hint="the warehouse kinetics table needs <coord>_moment or <coord>_force")


@dataclass
class TrialData:
    """One trial on the frames that have Moco ground truth; arrays float64, SI units."""
    subject: str
    trial: str
    time: np.ndarray      # (F,) s
    markers: np.ndarray   # (F, M, 3) m, NaN where unseen
    q: np.ndarray         # (F, C) rad | m
    qd: np.ndarray        # (F, C) rad/s | m/s
    qdd: np.ndarray       # (F, C) rad/s^2 | m/s^2
    tau: np.ndarray       # (F, C) N*m | N
    grf: np.ndarray       # (F, 2, 3) N, feet r, l
    cop: np.ndarray       # (F, 2, 3) m, centre of pressure in ground, NaN when unloaded
    free_torque: np.ndarray  # (F, 2) N*m, free moment about the vertical at the CoP
    frame_ok: np.ndarray  # (F,) bool: kinetics present and finite
    foot_ok: np.ndarray   # (F, 2) bool: that foot's GRF present and finite

    @property
    def dt(self) -> float:
        return float(np.median(np.diff(self.time))) if len(self.time) > 1 else 0.01


@dataclass
class Cohort:
    trials: list[TrialData]
    subjects: dict[str, dict]  # subject -> subjects.parquet row (mass_kg, height_m, model, ...)
    coordinate_names: list[str]
    marker_names: list[str]

    @property
    def subject_ids(self) -> list[str]:
        return sorted({t.subject for t in self.trials})


def _by_time(df: pd.DataFrame) -> pd.DataFrame:
    """Index by time rounded to the microsecond so tables of one trial join exactly."""
    df = df.reset_index() if "time" not in df.columns else df
    return df.assign(_t=np.round(df["time"].to_numpy(float), 6)).set_index("_t")


def load_cohort(root: str | Path, subjects: list[str] | None = None) -> Cohort:
    """Every trial of the warehouse with kinematics and kinetics (Moco ground truth)."""
    root = Path(root)
    if not (root / "subjects.parquet").exists():
        raise ModelError("warehouse has no subjects.parquet", file=root,
                         hint="build the dataset first: luigi --module tasks BuildDataset")
    info = pd.read_parquet(root / "subjects.parquet")
    subject_rows = {str(r["subject"]): dict(r) for _, r in info.iterrows()}
    kin = store.read_table(root, "kinematics", subjects)
    kinetics = store.read_table(root, "kinetics", subjects)
    markers = store.read_table(root, "markers", subjects)
    if kin.empty or kinetics.empty or markers.empty:
        raise ModelError("warehouse has no kinematics/kinetics/markers to train on", file=root,
                         hint="run BuildDataset; TrainModel needs trials with ground truth")
    meta = {"subject", "trial", "time"}
    coords = [c for c in kin.columns
              if c not in meta and not c.endswith(("_speed", "_accel"))]
    mk_names = names_of_markers([c for c in markers.columns if c not in meta])
    trials = []
    for (subject, trial), k in kin.groupby(["subject", "trial"], sort=True):
        kt = kinetics[(kinetics["subject"] == subject) & (kinetics["trial"] == trial)]
        mk = markers[(markers["subject"] == subject) & (markers["trial"] == trial)]
        if kt.empty or mk.empty or subject not in subject_rows:
            continue
        k = _by_time(k).sort_index()
        kt = _by_time(kt).reindex(k.index)
        mk = _by_time(mk).reindex(k.index)
        tau_cols = [torque_column(c, kt.columns) for c in coords]
        tau = kt[tau_cols].to_numpy(float)
        grf = kt[grf_columns()].to_numpy(float).reshape(-1, 2, 3)
        cop = kt[cop_columns()].to_numpy(float).reshape(-1, 2, 3)
        free = (kt[free_torque_columns()].to_numpy(float) if set(free_torque_columns())
                <= set(kt.columns) else np.zeros((len(k), 2)))
        xyz = [f"{m}_{a}" for m in mk_names for a in AXES]
        trials.append(TrialData(
            subject=str(subject), trial=str(trial), time=k["time"].to_numpy(float),
            markers=mk[xyz].to_numpy(float).reshape(len(k), -1, 3),
            q=k[coords].to_numpy(float), qd=k[[f"{c}_speed" for c in coords]].to_numpy(float),
            qdd=k[[f"{c}_accel" for c in coords]].to_numpy(float), tau=tau, grf=grf,
            cop=cop, free_torque=np.nan_to_num(free),
            frame_ok=np.isfinite(tau).all(1), foot_ok=np.isfinite(grf).all(2)))
    if not trials:
        raise ModelError("no trial has markers, kinematics and kinetics together", file=root)
    return Cohort(trials, subject_rows, coords, mk_names)


def split_subjects(subjects: list[str], seed: int = 0, val: float = 0.17,
                   test: float = 0.17) -> dict[str, list[str]]:
    """Subjects shuffled by `seed` into train/val/test (at least one each once there are 3)."""
    order = sorted(subjects)
    rng = np.random.default_rng(seed)
    order = [order[i] for i in rng.permutation(len(order))]
    n = len(order)
    if n < 3:
        return {"train": sorted(order), "val": sorted(order[:1]), "test": sorted(order[-1:])}
    n_test, n_val = max(1, round(test * n)), max(1, round(val * n))
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}


def window_root(markers: np.ndarray) -> np.ndarray:
    """Horizontal root (3,) of a window of markers (T, M, 3): mean centroid in x, z; y = 0."""
    with np.errstate(all="ignore"):
        c = np.nanmean(markers.reshape(-1, 3), axis=0)
    c = np.where(np.isfinite(c), c, 0.0)
    return np.array([c[0], 0.0, c[2]])


@dataclass
class Normalizer:
    """Per-channel mean/std from the training split (SI units; τ per kg, λ per body weight)."""
    marker_mean: np.ndarray  # (M, 3) m, root-relative
    marker_std: np.ndarray
    q_mean: np.ndarray       # (C,) root-relative for pelvis_tx/tz
    q_std: np.ndarray
    qd_std: np.ndarray
    qdd_std: np.ndarray
    tau_mean: np.ndarray     # (C,) N*m/kg | N/kg
    tau_std: np.ndarray
    grf_mean: np.ndarray     # (2, 3) BW
    grf_std: np.ndarray
    cop_mean: np.ndarray     # (2, 3) m, root-relative (x, z; y as is)
    cop_std: np.ndarray
    free_mean: np.ndarray    # (2,) N*m per body weight (m)
    free_std: np.ndarray
    root_q: list[int] = field(default_factory=list)  # indices of pelvis_tx, pelvis_tz

    @classmethod
    def fit(cls, cohort: Cohort, subjects: list[str], T: int = 16) -> Normalizer:
        trials = [t for t in cohort.trials if t.subject in subjects]
        if not trials:
            raise ModelError(f"no training trials for subjects {subjects}")
        root_q = [cohort.coordinate_names.index(c) for c in ROOT_TRANSLATIONS
                  if c in cohort.coordinate_names]
        mk, q, tau, grf, cop, free = [], [], [], [], [], []
        for t in trials:
            mass = float(cohort.subjects[t.subject]["mass_kg"])
            for s in range(0, max(len(t.time) - T + 1, 1), max(T // 2, 1)):
                w = slice(s, s + T)
                root = window_root(t.markers[w])
                mk.append(t.markers[w] - root)
                qq = t.q[w].copy()
                qq[:, root_q] -= root[[0, 2]][: len(root_q)]
                q.append(qq)
                cop.append(t.cop[w] - root)
            tau.append(t.tau[t.frame_ok] / mass)
            grf.append(t.grf[t.frame_ok] / (mass * GRAVITY))
            free.append(t.free_torque[t.frame_ok] / (mass * GRAVITY))
        cat = np.concatenate

        def stats(x, floor):
            with np.errstate(all="ignore"):
                m, s = np.nanmean(x, 0), np.nanstd(x, 0)
            return np.nan_to_num(m), np.maximum(np.nan_to_num(s), floor)

        mm, ms = stats(cat(mk), 0.01)
        qm, qs = stats(cat(q), 0.01)
        _, qds = stats(cat([t.qd for t in trials]), 0.05)
        _, qdds = stats(cat([t.qdd for t in trials]), 0.5)
        tm, ts = stats(cat(tau), 0.05)
        gm, gs = stats(cat(grf), 0.01)
        cm, cs = stats(cat(cop), 0.01)
        fm, fs = stats(cat(free), 1e-4)
        return cls(mm, ms, qm, qs, qds, qdds, tm, ts, gm, gs, cm, cs, fm, fs, root_q)

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(**{k: (v if k == "root_q" else np.asarray(v, dtype=float))
                      for k, v in d.items()})

    def tensors(self, dtype=torch.float32) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(np.asarray(v), dtype=dtype)
                for k, v in self.__dict__.items() if k != "root_q"}


@dataclass
class Windows:
    """Windows of one subject, stacked; tensors float32 in SI units (not normalised)."""
    subject: str
    markers: torch.Tensor   # (W, T, M, 3) m, root-relative, NaN where unseen
    root: torch.Tensor      # (W, 3) m
    q: torch.Tensor         # (W, T, C) absolute
    qd: torch.Tensor
    qdd: torch.Tensor
    tau: torch.Tensor       # (W, T, C)
    grf: torch.Tensor       # (W, T, 2, 3) N
    cop: torch.Tensor       # (W, T, 2, 3) m, root-relative, NaN when unloaded
    free_torque: torch.Tensor  # (W, T, 2) N*m
    frame_ok: torch.Tensor  # (W, T) bool
    foot_ok: torch.Tensor   # (W, T, 2) bool
    mass_kg: float
    height_m: float
    dt: float

    def __len__(self) -> int:
        return self.q.shape[0]

    def take(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {k: getattr(self, k)[idx] for k in
               ("markers", "root", "q", "qd", "qdd", "tau", "grf", "cop", "free_torque",
                "frame_ok", "foot_ok")}
        out.update(mass_kg=self.mass_kg, height_m=self.height_m, dt=self.dt,
                   subject=self.subject)
        return out


def make_windows(cohort: Cohort, subjects: list[str], T: int, stride: int) -> list[Windows]:
    """Windows of T frames every `stride` frames, one Windows per subject (for per-subject
    dynamics in the FD layer); trials shorter than T are skipped."""
    out = []
    for subject in subjects:
        parts: dict[str, list] = {k: [] for k in ("markers", "root", "q", "qd", "qdd", "tau",
                                                  "grf", "cop", "free_torque", "frame_ok",
                                                  "foot_ok")}
        dts = []
        for t in (t for t in cohort.trials if t.subject == subject):
            for s in range(0, len(t.time) - T + 1, stride):
                w = slice(s, s + T)
                root = window_root(t.markers[w])
                parts["markers"].append(t.markers[w] - root)
                parts["root"].append(root)
                parts["cop"].append(t.cop[w] - root)
                for k in ("q", "qd", "qdd", "tau", "grf", "free_torque", "frame_ok", "foot_ok"):
                    parts[k].append(getattr(t, k)[w])
                dts.append(t.dt)
        if not dts:
            continue
        stacked = {k: torch.as_tensor(np.stack(v)) for k, v in parts.items()}
        for k in ("markers", "root", "q", "qd", "qdd", "tau", "grf", "cop", "free_torque"):
            stacked[k] = stacked[k].float()
        for k in ("tau", "grf", "free_torque"):
            stacked[k] = torch.nan_to_num(stacked[k])
        row = cohort.subjects[subject]
        out.append(Windows(subject=subject, mass_kg=float(row["mass_kg"]),
                           height_m=float(row["height_m"]), dt=float(np.median(dts)), **stacked))
    return out


def augment_markers(markers: torch.Tensor, sigma_m: float, offset_m: float,
                    generator: torch.Generator) -> torch.Tensor:
    """Marker noise (B, T, M, 3): white noise per frame (sigma_m) plus a constant offset per
    marker and window (offset_m), the way skin-marker placement error behaves."""
    if sigma_m <= 0 and offset_m <= 0:
        return markers
    white = torch.randn(markers.shape, generator=generator) * sigma_m
    fixed = torch.randn((markers.shape[0], 1, *markers.shape[2:]), generator=generator) * offset_m
    return markers + white + fixed


def batches(windows: list[Windows], batch_size: int, generator: torch.Generator | None):
    """(subject index, window indices) batches; each from one subject (one Multibody).
    Shuffled within and across subjects when a generator is given."""
    plan = []
    for i, w in enumerate(windows):
        n = len(w)
        order = torch.randperm(n, generator=generator) if generator is not None \
            else torch.arange(n)
        plan += [(i, order[s:s + batch_size]) for s in range(0, n, batch_size)]
    if generator is not None:
        plan = [plan[j] for j in torch.randperm(len(plan), generator=generator).tolist()]
    return plan
