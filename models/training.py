"""Training MonoMSK (paper §3.3, §4): the two-phase schedule, Adam with step decay, a
self-describing checkpoint after every epoch, resume, and per-epoch metrics.

    result = fit(make_config("default"), cohort, multibodies, "run/checkpoint.pt")

`multibodies` maps each subject to its `Multibody` (the FD and FK layers need the subject's
own model: batches are drawn from one subject at a time). Deterministic on CPU for a given seed,
also across an interruption: every epoch's shuffling, noise and dropout draw from generators
seeded by (seed, epoch), so a resumed run replays exactly what an uninterrupted one does.
"""
from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from models import losses as L
from models.config import TrainConfig
from models.data import (
    GRAVITY,
    Cohort,
    Normalizer,
    Windows,
    augment_markers,
    batches,
    make_windows,
    split_subjects,
)
from models.dynamics import Multibody
from models.layers import AnatomicalFK, ForwardDynamicsLayer
from models.networks import MonoMSKNet, NetConfig

CHECKPOINT_FORMAT = 1


def configure_torch(threads: int) -> None:
    """Respect the machine (a shared 2-core box by default) and make CPU runs reproducible."""
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)


class Physics:
    """One subject's FD and FK layers, and FK of its reference q (no gradient, cached)."""

    def __init__(self, mb: Multibody, tracked: list[str], integrator: str):
        self.fd = ForwardDynamicsLayer(mb, tracked, integrator)
        self.fk = AnatomicalFK(mb, tracked)
        self._ref: dict[int, torch.Tensor] = {}

    def reference_points(self, w: Windows) -> torch.Tensor:
        """FK(q) (W, T, P, 3) of a window set's reference kinematics."""
        key = id(w)
        if key not in self._ref:
            with torch.no_grad():
                self._ref[key] = self.fk(w.q)
        return self._ref[key]


class Stepper:
    """Computes the loss terms of one batch: normalisation in, physics layers, losses out."""

    def __init__(self, cfg: TrainConfig, norm: Normalizer, net: MonoMSKNet,
                 physics: dict[str, Physics]):
        self.cfg, self.net, self.physics = cfg, net, physics
        self.n = norm.tensors()
        self.root_q = norm.root_q
        self.fd_seconds = 0.0

    def normalise_markers(self, markers: torch.Tensor) -> torch.Tensor:
        x = (markers - self.n["marker_mean"]) / self.n["marker_std"]
        return torch.nan_to_num(x, nan=0.0)  # unseen markers read as the mean pose

    def relative_q(self, q: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
        """Absolute q (B, T, C) -> root-relative (pelvis_tx, pelvis_tz minus the root)."""
        out = q.clone()
        out[..., self.root_q] = q[..., self.root_q] - root[:, None, [0, 2]][..., :len(self.root_q)]
        return out

    def absolute_q(self, q_rel: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
        out = q_rel.clone()
        out[..., self.root_q] = q_rel[..., self.root_q] + root[:, None, [0, 2]][..., :len(self.root_q)]
        return out

    def predict(self, batch: dict, markers: torch.Tensor, phase: str):
        """Forward pass. Returns q̂ (abs, SI), q̂̇, τ̂ (SI), λ̂ (ground, SI) and the normalised
        predictions used by the losses."""
        n, dt = self.n, batch["dt"]
        q_n_hat = self.net.inverse_kinematics(self.normalise_markers(markers))  # (B, T, C)
        q_hat = self.absolute_q(q_n_hat * n["q_std"] + n["q_mean"], batch["root"])
        qd_hat = L.central_velocity(q_hat, dt)
        if phase == "gt_embed":
            q_in = (self.relative_q(batch["q"], batch["root"]) - n["q_mean"]) / n["q_std"]
            qd_in = batch["qd"] / n["qd_std"]
        else:
            q_in, qd_in = q_n_hat, qd_hat / n["qd_std"]
        tau_n, contact_n = self.net.inverse_dynamics(q_in, qd_in)
        tau, contact = denormalise_kinetics(n, tau_n, contact_n, batch["mass_kg"],
                                            batch["root"])
        return dict(q_n_hat=q_n_hat, q_hat=q_hat, qd_hat=qd_hat, tau_n=tau_n,
                    contact_n=contact_n, tau=tau, contact=contact)

    def terms(self, batch: dict, windows: Windows, phase: str, generator: torch.Generator,
              augment: bool) -> dict[str, torch.Tensor]:
        cfg, n, dt = self.cfg, self.n, batch["dt"]
        markers = batch["markers"]
        if augment:
            markers = augment_markers(markers, cfg.marker_noise_m, cfg.marker_offset_m,
                                      generator)
        p = self.predict(batch, markers, phase)
        q_n = (self.relative_q(batch["q"], batch["root"]) - n["q_mean"]) / n["q_std"]
        frame_ok = batch["frame_ok"].unsqueeze(-1)
        mass = batch["mass_kg"]
        target_n = normalise_contact(n, batch, mass)
        loaded = batch["foot_ok"] & batch["frame_ok"].unsqueeze(-1)           # (B, T, 2)
        has_cop = loaded & torch.isfinite(batch["cop"]).all(-1)
        out = {
            "ik": L.masked_mse(p["q_n_hat"], q_n),
            # Per-frame units of q's spread, like the paper's mm/frame and mm/frame² metrics:
            # the IKT's pose, velocity and acceleration errors are then on one scale.
            "vel": L.masked_mse((p["qd_hat"] - batch["qd"]) * (dt / n["q_std"]),
                                torch.zeros_like(p["qd_hat"])),
            "acc": L.masked_mse((L.second_difference(p["q_hat"], dt) - batch["qdd"][:, 1:-1])
                                * (dt ** 2 / n["q_std"]), torch.zeros_like(p["q_hat"][:, 1:-1])),
            "tau": L.masked_mse(p["tau_n"],
                                (batch["tau"] / mass - n["tau_mean"]) / n["tau_std"], frame_ok),
            # GRF everywhere it is known; CoP and free moment only under a loaded foot.
            "lambda": (L.masked_mse(p["contact_n"][..., :3], target_n[..., :3],
                                    loaded.unsqueeze(-1))
                       + L.masked_mse(p["contact_n"][..., 3:], target_n[..., 3:],
                                      has_cop.unsqueeze(-1))),
        }
        if cfg.architecture == "monomsk" and ({"q", "J"} & set(cfg.losses)):
            out.update(self.physics_terms(batch, windows, p, phase, generator))
        return out

    def physics_terms(self, batch, windows, p, phase, generator) -> dict[str, torch.Tensor]:
        """Lq and LJ: integrate τ̂, λ̂ with the FD layer, compare q̂fd and FK(q̂fd)."""
        t0 = time.perf_counter()
        cfg, n, dt = self.cfg, self.n, batch["dt"]
        phys = self.physics[batch["subject"]]
        if phase == "gt_embed":
            q0, qd0 = batch["q"], batch["qd"]   # the reference state (paper: GT embeddings)
        else:
            q0, qd0 = p["q_hat"], p["qd_hat"]   # the IKT's own state: gradients reach the IKT
        T = q0.shape[1]
        if cfg.output == "single":
            k = T - 1 if cfg.fd_frames <= 0 else min(cfg.fd_frames, T - 1)
            frames = torch.randperm(T - 1, generator=generator)[:k].sort().values
            targets = frames + 1  # q_fd: (B, k, C)

            def integrate(tau, contact):
                return phys.fd.single_frame(q0[:, frames], qd0[:, frames], tau[:, frames],
                                            contact[:, frames], dt)[0]
        else:
            targets = torch.arange(1, T)

            def integrate(tau, contact):
                return phys.fd.multi_frame(q0[:, 0], qd0[:, 0], tau, contact, dt)[0]
        q_fd = integrate(p["tau"], p["contact"])
        ref_q = self.fd_targets(batch, q0, qd0, frames if cfg.output == "single" else None)
        if cfg.lq_metric == "mass":
            with torch.no_grad():  # the metric is a fixed weighting, not a path for gradients
                metric = phys.fd.mass_matrix(ref_q) / (batch["mass_kg"] * batch["height_m"] ** 2)
            out = {"q": L.metric_mse(q_fd - ref_q, metric)}
        else:
            out = {"q": L.masked_mse((q_fd - ref_q) / n["q_std"], torch.zeros_like(q_fd))}
        if "J" in cfg.losses:
            if not cfg.lj_to_forces:
                # LJ trains the IKT (through the predicted start state) and not τ̂, λ̂: on the
                # synthetic walks its gradient into the forces biased the vertical GRF
                # 12-19% BW low (docs/model.md, "LJ on walking"). From the reference state
                # (ground-truth embeddings) it then has no trainable path: no second FD step.
                q_fd = (q_fd.detach() if phase == "gt_embed"
                        else integrate(p["tau"].detach(), p["contact"].detach()))
            if cfg.fd_target == "next_frame" or cfg.output == "multi":
                ref_J = phys.reference_points(windows)[batch["index"]][:, targets]
            else:
                with torch.no_grad():
                    ref_J = phys.fk(ref_q)
            out["J"] = L.masked_mse(phys.fk(q_fd) / batch["height_m"],
                                    ref_J / batch["height_m"])
        self.fd_seconds += time.perf_counter() - t0
        return out

    def fd_targets(self, batch: dict, q0: torch.Tensor, qd0: torch.Tensor,
                   frames: torch.Tensor | None) -> torch.Tensor:
        """Lq's target (B, K, C) for the frames after `frames`, as `cfg.fd_target` says:
        "next_frame" the reference q there; "reference" one integrator step driven by the
        reference q̈ from the reference state; "own_start" the same from the FD layer's own
        start (q0, q̇0: the IKT's state on predicted embeddings, so its pose error is not a
        target for τ̂). Multi-frame-out (frames None) compares the rollout with the reference
        frames 1..T-1: a rollout with the true τ drifts from the reference's own q̈ as much as
        from the reference frames (tests/test_losses_fd_target.py), so no target is exact."""
        cfg = self.cfg
        if frames is None:
            return batch["q"][:, 1:]
        if cfg.fd_target == "next_frame":
            return batch["q"][:, frames + 1]
        if cfg.fd_target == "reference":
            q0, qd0 = batch["q"], batch["qd"]
        return L.integrator_targets(q0[:, frames], qd0[:, frames], batch["qdd"][:, frames],
                                    batch["dt"], cfg.integrator)


def denormalise_kinetics(n: dict, tau_n: torch.Tensor, contact_n: torch.Tensor, mass: float,
                         root: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Network outputs -> τ (B, T, C) N·m|N and λ (B, T, 2, 7) in ground: force N, CoP m
    (x, z from the window root; y at the training data's mean CoP height), free moment N·m."""
    tau = (tau_n * n["tau_std"] + n["tau_mean"]) * mass
    weight = mass * GRAVITY
    force = (contact_n[..., 0:3] * n["grf_std"] + n["grf_mean"]) * weight
    xz = contact_n[..., 3:5] * n["cop_std"][:, [0, 2]] + n["cop_mean"][:, [0, 2]]
    xz = xz + root[:, None, None, [0, 2]]
    y = n["cop_mean"][:, 1].expand_as(xz[..., 0])
    cop = torch.stack([xz[..., 0], y, xz[..., 1]], dim=-1)
    free = (contact_n[..., 5] * n["free_std"] + n["free_mean"]) * weight
    return tau, torch.cat([force, cop, free.unsqueeze(-1)], dim=-1)


def normalise_contact(n: dict, batch: dict, mass: float) -> torch.Tensor:
    """The reference λ in the network's units (B, T, 2, 6); NaN where the CoP is unknown."""
    weight = mass * GRAVITY
    force = (batch["grf"] / weight - n["grf_mean"]) / n["grf_std"]
    # Root-relative already; NaN (unloaded) -> 0 so masked-out terms keep finite gradients.
    cop = torch.nan_to_num((batch["cop"] - n["cop_mean"]) / n["cop_std"])
    free = (batch["free_torque"] / weight - n["free_mean"]) / n["free_std"]
    return torch.cat([force, cop[..., [0, 2]], free.unsqueeze(-1)], dim=-1)


def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f"_{path.name}.{uuid.uuid4().hex}.tmp"
    torch.save(obj, staging)
    os.replace(staging, path)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(1_000_003 * seed + 7919 * epoch + 17)


def build_net(cfg: TrainConfig, markers: int, coordinates: int) -> MonoMSKNet:
    return MonoMSKNet(NetConfig(markers=markers, coordinates=coordinates,
                                window=cfg.window, width=cfg.width, layers=cfg.layers,
                                heads=cfg.heads, ff=cfg.ff, dropout=cfg.dropout, hidden=cfg.hidden,
                                architecture=cfg.architecture))


def distributed() -> tuple[int, int]:
    """(rank, world size): under `torchrun` (WORLD_SIZE > 1) the gloo process group is joined
    here, once; (0, 1) in a plain process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def barrier() -> None:
    """Wait for every rank (a no-op in a plain process)."""
    if dist.is_initialized():
        dist.barrier()


def _average_gradients(net: torch.nn.Module, world: int) -> None:
    """Data parallelism as DistributedDataParallel does it (gradients averaged over the ranks
    after backward), written out because the model is called through its IKT and IDT halves,
    not through one forward() that the DDP wrapper could hook."""
    for parameter in net.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= world


def _run_split(stepper: Stepper, windows: list[Windows], cfg: TrainConfig, phase: str,
               generator: torch.Generator, optimizer=None,
               average: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """One pass; trains when an optimizer is given. Returns the window-weighted mean terms.
    Under torchrun each rank trains on its share of the batches (the same number per rank, so
    every optimizer step is a collective one) and the means are over all ranks."""
    sums: dict[str, float] = {}
    count = 0
    plan = list(batches(windows, cfg.batch_size, generator if optimizer is not None else None))
    rank, world = distributed()
    if optimizer is not None and world > 1:
        plan = plan[rank:len(plan) // world * world:world]
    for i, idx in plan:
        w = windows[i]
        batch = w.take(idx)
        batch["index"] = idx
        with torch.set_grad_enabled(optimizer is not None):
            terms = stepper.terms(batch, w, phase, generator, augment=optimizer is not None)
            total = L.total_loss(terms, cfg.weights, cfg.losses)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if world > 1:
                _average_gradients(stepper.net, world)
            optimizer.step()
            if average is not None:
                _update_average(average, stepper.net, cfg.weight_average)
        b = len(idx)
        count += b
        for k, v in {"loss": total, **terms}.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * b
    if optimizer is not None and world > 1:
        keys = sorted(sums)
        totals = torch.tensor([count] + [sums[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(totals)
        count, sums = int(totals[0]), dict(zip(keys, totals[1:].tolist(), strict=True))
    return {k: v / max(count, 1) for k, v in sums.items()}


def fit(cfg: TrainConfig, cohort: Cohort, multibodies: dict[str, Multibody] | None,
        checkpoint: str | Path, *, split: dict[str, list[str]] | None = None,
        on_epoch: Callable[[int, int, list[dict]], None] | None = None,
        stop_after: int | None = None) -> dict:
    """Train (or resume) to `cfg.epochs`, checkpointing after every epoch.

    stop_after: return after that many epochs in total (an interruption, for tests).
    Returns {"epochs_done", "complete", "metrics" (rows), "seconds", "fd_seconds", "split"}.
    """
    configure_torch(cfg.threads)
    checkpoint = Path(checkpoint)
    split = split or split_subjects(cohort.subject_ids, cfg.seed)
    state = torch.load(checkpoint, weights_only=False) if checkpoint.exists() else None
    if state is not None and state["config"] != cfg.to_dict():
        raise ValueError(f"{checkpoint} was written by another configuration; "
                         "use a new run folder")
    if state is not None:
        split = state["split"]
        norm = Normalizer.from_dict(state["normalizer"])
    else:
        norm = Normalizer.fit(cohort, split["train"], cfg.window)
    train = make_windows(cohort, split["train"], cfg.window, cfg.stride)
    val = make_windows(cohort, split["val"], cfg.window, cfg.stride)
    if not train:
        raise ValueError(f"no training window of {cfg.window} frames in subjects "
                         f"{split['train']}")
    needs_physics = cfg.architecture == "monomsk" and bool({"q", "J"} & set(cfg.losses))
    physics = {}
    if needs_physics:
        if not multibodies:
            raise ValueError("the FD/FK losses need each subject's Multibody")
        physics = {s: Physics(multibodies[s], cohort.coordinate_names, cfg.integrator)
                   for s in split["train"] + split["val"]}
    torch.manual_seed(cfg.seed)
    net = build_net(cfg, len(cohort.marker_names), len(cohort.coordinate_names))
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step, cfg.lr_gamma)
    rows, start = [], 0
    if state is not None:
        net.load_state_dict(state.get("trained", state["model"]))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rows, start = state["metrics"], state["epoch"]
    average = None
    if cfg.weight_average > 0:
        average = {k: v.detach().clone() for k, v in
                   (state["model"] if state is not None else net.state_dict()).items()}
    stepper = Stepper(cfg, norm, net, physics)
    began = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        phase = cfg.phase_of(epoch)
        generator = _epoch_generator(cfg.seed, epoch)
        torch.manual_seed(cfg.seed * 1009 + epoch)  # dropout
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        net.train()
        tr = _run_split(stepper, train, cfg, phase, generator, optimizer, average)
        seconds = time.perf_counter() - t0
        net.eval()
        va = _run_split(stepper, val, cfg, phase, generator) if val else {}
        scheduler.step()
        for split_name, m in (("train", tr), ("val", va)):
            if m:
                rows.append(_row(epoch, phase, split_name, m, lr, seconds))
        rank, world = distributed()
        if rank == 0:  # one writer; every rank holds the same weights after the step
            extra = {"trained": net.state_dict()} if average is not None else {}
            _save_atomic({"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(),
                          "net": net.cfg.to_dict(), **extra,
                          "model": average if average is not None else net.state_dict(),
                          "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                          "normalizer": norm.to_dict(), "split": split,
                          "coordinate_names": cohort.coordinate_names,
                          "marker_names": cohort.marker_names, "metrics": rows,
                          "world_size": world, "complete": epoch + 1 == cfg.epochs},
                         checkpoint)
        if world > 1:
            dist.barrier()  # the checkpoint is whole before any rank goes on
        if on_epoch is not None:
            on_epoch(epoch + 1, cfg.epochs, rows)
    done = len({r["epoch"] for r in rows})
    return {"epochs_done": done, "complete": done == cfg.epochs, "metrics": rows,
            "seconds": time.perf_counter() - began, "fd_seconds": stepper.fd_seconds,
            "split": split}


@torch.no_grad()
def _update_average(average: dict[str, torch.Tensor], net: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of the weights after each optimizer step (what the
    checkpoint's "model", and so Predict and Evaluate, use; "trained" holds the raw weights
    that training resumes from). Why: on 4 training subjects the last step's weights
    generalise to a new subject very differently from one seed to the next (docs/model.md)."""
    for k, v in net.state_dict().items():
        if v.is_floating_point():
            average[k].mul_(decay).add_(v, alpha=1.0 - decay)
        else:
            average[k].copy_(v)


def _row(epoch: int, phase: str, split: str, m: dict, lr: float, seconds: float) -> dict:
    row = {"epoch": epoch + 1, "phase": phase, "split": split, "loss": m["loss"]}
    for term in L.TERMS:
        row[f"loss_{term}"] = m.get(term, math.nan)
    row.update(lr=lr, seconds=seconds)
    return row
