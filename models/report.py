"""The evaluation report a lab reads: one static HTML page with PNG figures, no JavaScript.

    write_report(report_dir)     # reads metrics.json, metrics.parquet, curves.parquet, the
                                 # training log it names, and ablation tables when present

Figures: predicted against reference GRF (body weights) and joint moments (N*m/kg) of each
activity's representative trial, per-coordinate errors, training curves. Tables: the metrics
overall, by activity and by subject, and the loss / output ablations (Tables 3 and 4).
"""
from __future__ import annotations

import html
import json
import os
import uuid
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in cron
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GRAVITY = 9.80665  # m/s^2 (as models/metrics.py; kept here so the report needs no torch)
LABELS = {"mpblpe_mm": "MPBLPE (mm)", "mae_angle_deg": "MAE angle (deg)",
          "accel_err_mm_per_frame2": "Accel error (mm/frame²)",
          "vel_err_mm_per_frame": "Velocity error (mm/frame)",
          "mae_grf_bw": "MAE GRF (BW)", "mae_torque_nm_per_kg": "MAE torque (N·m/kg)"}
ABLATIONS = (("ablations_losses.csv", "Loss ablation (paper Table 3)"),
             ("ablations_output.csv", "Single- against multi-frame output (paper Table 4)"))
MAX_MOMENT_PANELS = 8
SAGITTAL = [f"{j}_{side}_moment" for side in "rl" for j in ("hip_flexion", "knee_angle",
                                                            "ankle_angle")]


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no `tabulate` dependency); NaN/None shown as '–'."""
    def cell(v):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "–"
        return f"{v:.{digits}g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _save(fig, path: Path) -> str:
    staging = path.parent / f"_{path.stem}.{uuid.uuid4().hex[:8]}.png"
    fig.savefig(staging, dpi=100)
    plt.close(fig)
    os.replace(staging, path)
    return path.name


def _slug(*parts: str) -> str:
    return "_".join("".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in p) for p in parts)


def plot_grf(curves: pd.DataFrame, path: Path) -> str:
    """Both feet, three force components, predicted dashed over reference solid, in BW."""
    bw = float(curves["mass_kg"].iloc[0]) * GRAVITY
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True, layout="constrained")
    for ax, side in zip(axes, "rl"):
        for axis, color in zip("xyz", ("tab:blue", "tab:green", "tab:red")):
            col = f"ground_force_{side}_v{axis}"
            for source, style in (("reference", "-"), ("predicted", "--")):
                part = curves[curves["source"] == source]
                if col in part:
                    ax.plot(part["time"], part[col] / bw, style, color=color,
                            label=f"{axis} {source}")
        ax.set_title(f"{'right' if side == 'r' else 'left'} foot")
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("GRF (body weights)")
    axes[1].legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_moments(curves: pd.DataFrame, path: Path) -> str:
    """Hip, knee and ankle flexion moments, then the largest others, N*m/kg."""
    mass = float(curves["mass_kg"].iloc[0])
    ref, pred = curves[curves["source"] == "reference"], curves[curves["source"] == "predicted"]
    moments = [c for c in ref.columns if c.endswith("_moment") and not c.startswith("pelvis_")]
    # The sagittal joints a lab looks at first, then the rest by size.
    moments = sorted(moments, key=lambda c: (
        SAGITTAL.index(c) if c in SAGITTAL else len(SAGITTAL),
        -np.nanmax(np.abs(ref[c].to_numpy(float)), initial=0)))[:MAX_MOMENT_PANELS]
    cols = 4
    rows = max(1, -(-len(moments) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.6 * rows), squeeze=False,
                             layout="constrained")
    for ax, col in zip(axes.ravel(), moments):
        ax.plot(ref["time"], ref[col] / mass, "-", color="black", label="reference")
        if col in pred:
            ax.plot(pred["time"], pred[col] / mass, "--", color="tab:orange", label="predicted")
        ax.set_title(col.removesuffix("_moment"), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(moments):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    axes[0, 0].set_ylabel("moment (N·m/kg)")
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path)


def plot_coordinate_errors(by_coordinate: dict, path: Path) -> str:
    """Horizontal bars: angle MAE (deg) and joint-moment MAE (N*m/kg) per coordinate."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    for ax, (key, label) in zip(axes, (("angle_deg", "angle MAE (deg)"),
                                       ("torque_nm_per_kg", "moment MAE (N·m/kg)"))):
        values = {k: v for k, v in by_coordinate.get(key, {}).items() if v is not None}
        names = list(values)
        ax.barh(names, [values[n] for n in names], color="tab:blue")
        ax.invert_yaxis()
        ax.set_xlabel(label)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_training(training: pd.DataFrame, path: Path) -> str:
    """Total loss per epoch for each split (log scale) and the validation loss terms."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    for split, group in training.groupby("split", sort=True):
        axes[0].plot(np.arange(1, len(group) + 1), group["loss"], marker="o", ms=3, label=split)
    terms = [c for c in training.columns if c.startswith("loss_")]
    val = training[training["split"] == "val"] if (training["split"] == "val").any() else training
    for term in terms:
        values = val[term].to_numpy(float)
        if np.isfinite(values).any() and np.nanmax(np.abs(values)) > 0:
            axes[1].plot(np.arange(1, len(val) + 1), values, label=term.removeprefix("loss_"))
    if "phase" in training:
        phases = training[training["split"] == training["split"].iloc[0]]["phase"].to_numpy()
        switch = np.flatnonzero(phases[1:] != phases[:-1])
        for ax in axes:
            for s in switch:
                ax.axvline(s + 1.5, color="grey", ls=":", lw=1)
    for ax, title in zip(axes, ("loss", "validation loss terms")):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(fig, path)


def _metrics_frame(blocks: dict[str, dict]) -> pd.DataFrame:
    rows = [{"": name, **{LABELS[k]: b.get(k) for k in LABELS}, "trials": b.get("trials"),
             "frames": b.get("frames")} for name, b in blocks.items()]
    return pd.DataFrame(rows)


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4g}", border=0)


def _figure(name: str, caption: str) -> str:
    return (f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{padding:3px 9px;text-align:right}
th{border-bottom:1px solid #888}td:first-child,th:first-child{text-align:left}
tr:nth-child(even){background:#f4f4f4}img{max-width:100%}figcaption{font-size:0.85em;color:#555}
.note{font-size:0.9em;color:#444}.warn{background:#fff3cd;padding:0.5em}"""


def write_report(report_dir: str | Path) -> Path:
    """Re-render `report_dir/index.html` (and its PNGs) from a finished evaluation there
    (metrics.json and the Parquet beside it), e.g. once ablation tables have been added."""
    out = Path(report_dir)
    summary = json.loads((out / "metrics.json").read_text())
    return render(out, summary, redraw=False)


def _draw(plot, data, path: Path, redraw: bool) -> str:
    """The figure's file name; drawn unless it exists and `redraw` is off."""
    if redraw or not path.exists():
        plot(data, path)
    return path.name


def render(out: Path, summary: dict, redraw: bool = True) -> Path:
    """index.html in `out` for a metrics summary (metrics.json's content); the per-trial and
    curve tables are read from `out`, the training log from summary["training_metrics"].
    redraw=False keeps figures already there (a re-render that only adds tables)."""
    out = Path(out)
    per_trial = pd.read_parquet(out / "metrics.parquet")
    curves_path = out / "curves.parquet"
    curves = pd.read_parquet(curves_path) if curves_path.exists() else pd.DataFrame()
    run = summary.get("run", out.name)
    seen = summary.get("test_subjects_in_training") or []
    warning = (f'<p class="warn">Test subjects {html.escape(", ".join(seen))} were also '
               "trained on (too few subjects to hold one out): these are training errors, not "
               "generalisation.</p>") if seen else ""
    parts = [f"<h1>MonoMSK evaluation: {html.escape(str(run))}</h1>",
             '<p class="note">Test subjects: '
             f"{html.escape(', '.join(summary.get('test_subjects', [])))}. "
             f"Checkpoint: <code>{html.escape(str(summary.get('checkpoint', '')))}</code>. "
             "Definitions and units: docs/metrics.md. Joint-moment errors leave out the pelvis "
             "residuals (they are not joint torques).</p>",
             warning,
             "<h2>Overall</h2>", _table_html(_metrics_frame({"all test trials":
                                                            summary["overall"]})),
             "<h2>By activity</h2>", _table_html(_metrics_frame(summary["by_activity"])),
             "<h2>By subject</h2>", _table_html(_metrics_frame(summary["by_subject"]))]

    if not curves.empty:
        parts.append("<h2>Representative trials (median torque error of each activity)</h2>")
        for (subject, trial), group in curves.groupby(["subject", "trial"], sort=True):
            group = group.dropna(axis=1, how="all")
            label = f"{subject} {trial} ({group['activity'].iloc[0]})"
            grf = _draw(plot_grf, group, out / f"grf_{_slug(subject, trial)}.png", redraw)
            mom = _draw(plot_moments, group, out / f"moments_{_slug(subject, trial)}.png",
                        redraw)
            parts += [f"<h3>{html.escape(label)}</h3>",
                      _figure(grf, f"GRF of {label}: reference solid, predicted dashed"),
                      _figure(mom, f"Joint moments of {label}: reference black, predicted "
                                   "orange dashed")]

    parts += ["<h2>Errors per coordinate</h2>",
              _figure(_draw(plot_coordinate_errors, summary.get("by_coordinate", {}),
                            out / "coordinate_errors.png", redraw),
                      "Mean absolute error per coordinate over the test trials")]

    log = summary.get("training_metrics")
    if log and Path(log).exists():
        training = pd.read_parquet(log)
        if len(training):
            parts += ["<h2>Training</h2>",
                      _figure(_draw(plot_training, training, out / "training_curves.png", redraw),
                              "Loss per epoch (dotted line: switch to predicted embeddings)")]

    for name, title in ABLATIONS:
        if (out / name).exists():
            parts += [f"<h2>{html.escape(title)}</h2>", _table_html(pd.read_csv(out / name))]

    parts += ["<h2>Per trial</h2>",
              _table_html(per_trial[["subject", "trial", "activity", "frames",
                                     *[k for k in LABELS if k in per_trial]]]
                          .rename(columns=LABELS))]
    page = ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>MonoMSK evaluation: {html.escape(str(run))}</title><style>{STYLE}</style>"
            "</head><body>" + "\n".join(parts) + "</body></html>\n")
    staging = out / f"_index.{uuid.uuid4().hex[:8]}.html"
    staging.write_text(page, encoding="utf-8")
    os.replace(staging, out / "index.html")
    return out / "index.html"
