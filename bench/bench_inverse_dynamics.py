"""Frames per second of batched torch inverse dynamics vs OpenSim's InverseDynamicsSolver looped
over the same frames, in the same run; plus the cost of one forward-dynamics / RK4 step.

    .venv/bin/python bench/bench_inverse_dynamics.py [--model PATH] [--batch 1024 4096]
        [--threads 2] [--opensim-frames 1024] [--compile 16384 65536]

Times eager `Multibody.inverse_dynamics` (structure-of-arrays backend, the default) and its
generic (..., 3)-tensor backend, and with --compile the inductor-fused version of
models/fast_id.py at the given batches (minutes of compilation per batch and dtype).

Uses the walking model of ../shared/data (muscles switched off: they do not change the tree).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import opensim
import torch

from models.dynamics import Multibody
from models.integrators import MultibodyODE, rk4_step
from models.tree import random_states
from osim.export_tree import export_tree, simbody_vectors

DEFAULT_MODEL = (Path(__file__).resolve().parents[2] / "shared" / "data" / "opensim-core"
                 / "example3DWalking" / "subject_walk_scaled.osim")


def best_time(fn, repeats: int, *args) -> float:
    """Best wall time of `repeats` calls fn(*args) (s), after one warm-up call."""
    fn(*args)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def opensim_fps(model_path: Path, q, qd, qdd, coordinates: list[dict]) -> float:
    opensim.Logger.setLevelString("error")
    model = opensim.Model(str(model_path))
    # Same multibody as ours: muscles, actuators and contact removed (they do not change it).
    model.updForceSet().clearAndDestroy()
    state = model.initSystem()
    solver = opensim.InverseDynamicsSolver(model)
    n, ncoord = q.shape
    # Pre-build the state vectors so only the solver work (and its unavoidable state set-up)
    # is timed.
    vecs = [simbody_vectors(coordinates, q[k], qd[k], qdd[k]) for k in range(n)]

    def run():
        for qv, uv, udot in vecs:
            state.setQ(qv)
            state.setU(uv)
            model.realizeVelocity(state)
            solver.solve(state, udot)

    return n / best_time(run, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--opensim-frames", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", type=int, nargs="*", default=[], metavar="BATCH",
                        help="also time models/fast_id.py (traced with make_fx, fused by "
                             "torch.compile/inductor) at these batches (takes minutes each)")
    parser.add_argument("--compile-dtype", choices=["float64", "float32"], nargs="+",
                        default=["float64"])
    parser.add_argument("--fd-batch", type=int, default=1024,
                        help="batch for the forward-dynamics and RK4 timings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    opensim.Logger.setLevelString("error")

    desc = export_tree(str(args.model))
    mb = Multibody.from_tree(desc, torch.float64)
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"model {args.model.name}: {mb.num_coordinates} coordinates, "
          f"{len(mb.body_names)} bodies; torch {torch.__version__}, {args.threads} threads")

    q, qd, qdd = random_states(desc, args.opensim_frames)
    os_fps = opensim_fps(args.model, q, qd, qdd, desc["coordinates"])
    print(f"OpenSim InverseDynamicsSolver loop: {os_fps:12,.0f} frames/s "
          f"({1e6 / os_fps:.1f} us/frame, {args.opensim_frames} frames)")

    for dtype in (torch.float64, torch.float32):
        name = str(dtype).replace("torch.", "")
        for batch in args.batch:
            q, qd, qdd = (torch.tensor(x, dtype=dtype) for x in random_states(desc, batch, 1))
            with torch.no_grad():
                fps = batch / best_time(mb.inverse_dynamics, args.repeats, q, qd, qdd)
                gen = batch / best_time(lambda a, b, c: mb.inverse_dynamics(a, b, c, generic=True),
                                        args.repeats, q, qd, qdd)
            print(f"torch ID  {name} batch {batch:6d}: {fps:12,.0f} frames/s "
                  f"= {fps / os_fps:6.1f}x OpenSim (generic backend {gen / os_fps:5.1f}x)")
        q, qd, qdd = (torch.tensor(x, dtype=dtype) for x in random_states(desc, args.fd_batch, 1))
        with torch.no_grad():
            tau = mb.inverse_dynamics(q, qd, qdd)
            t_m = best_time(mb.mass_matrix, args.repeats, q)
            t_fd = best_time(mb.forward_dynamics, args.repeats, q, qd, tau)
            ode = MultibodyODE(mb, tau)
            y = torch.cat([q, qd], -1)
            t_rk4 = best_time(rk4_step, args.repeats, ode, 0.0, y, 1e-3)
        per = 1e6 / args.fd_batch
        print(f"torch     {name} batch {args.fd_batch:6d}: mass matrix {t_m * per:7.2f} us/frame, "
              f"FD step {t_fd * per:7.2f} us/frame, RK4 step {t_rk4 * per:7.2f} us/frame")
    for dtype_name in args.compile_dtype:
        for batch in args.compile:
            compiled_fps(mb, desc, batch, getattr(torch, dtype_name), args.repeats, os_fps)
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


def compiled_fps(mb: Multibody, desc: dict, batch: int, dtype: torch.dtype, repeats: int,
                 os_fps: float) -> None:
    """models/fast_id.py: the structure-of-arrays RNEA traced once into ~10,000 elementwise aten
    ops (fixed batch shape), which inductor fuses into vectorized C++ loops."""
    from models.fast_id import compile_inverse_dynamics
    q, qd, qdd = (torch.tensor(x, dtype=dtype) for x in random_states(desc, batch, 1))
    with torch.no_grad():
        t0 = time.perf_counter()
        fused = compile_inverse_dynamics(mb, batch, dtype)
        ref = mb.inverse_dynamics(q.double(), qd.double(), qdd.double())
        err = (fused(q, qd, qdd).double() - ref).abs().max().item()
        compile_s = time.perf_counter() - t0
        eager = batch / best_time(mb.inverse_dynamics, repeats, q, qd, qdd)
        fps = batch / best_time(fused, repeats, q, qd, qdd)
    name = str(dtype).replace("torch.", "")
    print(f"torch ID  {name} batch {batch:6d} compiled: {fps:12,.0f} frames/s "
          f"({1e6 / fps:.2f} us/frame) = {fps / os_fps:6.1f}x OpenSim "
          f"({fps / eager:.1f}x eager in the same run; compile {compile_s:.0f} s; "
          f"max diff to float64 eager {err:.1e} N*m)", flush=True)


if __name__ == "__main__":
    main()
