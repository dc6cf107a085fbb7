"""Run one Moco window in a process of its own, so a crash or a hang costs one window, not the
batch: a scratch folder per window, one thread, a timeout, the solver's log kept beside it."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from .moco_track import WindowSpec

ONE_THREAD = {"OPENSIM_MOCO_PARALLEL": "0", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


PR_SET_PDEATHSIG = 1
# Engine name -> the module that solves one window spec (same outputs, see docs/engine.md).
ENGINES = {"moco": "osim.moco_track", "casadi": "collocation"}


def _die_with_parent() -> None:
    """In the child before exec: the kernel kills the solver when its worker dies, so a killed
    Luigi worker leaves no orphaned solve running (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_window(spec: WindowSpec, timeout_s: float, engine_options: dict | None = None) -> dict:
    """Solve a window in a subprocess; always returns a result dict (`success` False on failure,
    with `status` saying why: the IPOPT status, `timeout`, or `crashed`). `engine_options`:
    the CasADi engine's extra spec keys (`collocation.spec.EXTRA_KEYS`: guess,
    friction_transition_velocity); Moco has none."""
    workdir = Path(spec.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / "spec.json"
    payload = asdict(spec)
    engine = spec.settings.get("engine", "moco")
    if engine not in ENGINES:
        return _failure(spec, "bad_engine", f"unknown engine {engine!r}; use one of "
                        f"{sorted(ENGINES)}")
    if engine == "casadi":
        # The collocation engine must not import opensim (DESIGN.md trap 2): it reads the
        # model as the exported tree, written here, in the opensim process.
        from .export_tree import write_tree

        payload["tree"] = str(write_tree(spec.model, workdir / "tree.json"))
        payload["engine"] = engine
        payload.update(engine_options or {})
    elif engine_options:
        raise ValueError(f"engine {engine!r} takes no options, got {sorted(engine_options)}")
    spec_path.write_text(json.dumps(payload, indent=2))
    result_path = workdir / "result.json"
    result_path.unlink(missing_ok=True)
    env = {**os.environ, **ONE_THREAD}
    with open(workdir / "solve.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", ENGINES[engine], str(spec_path)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                   start_new_session=True, preexec_fn=_die_with_parent)
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return _failure(spec, "timeout", f"no solution within {timeout_s:.0f} s")
    if not result_path.exists():
        tail = (workdir / "solve.log").read_text(errors="replace").strip().splitlines()[-3:]
        return _failure(spec, "crashed", f"solver process exited with code {code}: "
                        + " | ".join(tail))
    return json.loads(result_path.read_text())


def _failure(spec: WindowSpec, status: str, detail: str) -> dict:
    return {"success": False, "status": status, "detail": detail, "iterations": 0,
            "t0": spec.t0, "t1": spec.t1, "solve_seconds": float("nan")}
