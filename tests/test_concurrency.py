"""Issue 8, part 4: a central `luigid` on loopback and two separate worker processes running
`BuildDataset` at once against the same raw folder, warehouse and artifacts (the multi-machine
set-up of docs/operations.md, on one machine). Every trial must be solved exactly once and the
warehouse must check clean.
"""
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from data_factory import good_subject, luigi_command, run_warehouse, tiny_config

from warehouse import catalog, store

TRIALS = ("stand_01", "stand_02")
RAN = re.compile(r"running\s+(\w+)\(subject=(\w+)(?:, trial=(\w+))?")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "luigid exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"luigid did not listen on port {port}")


@pytest.fixture
def scheduler(tmp_path):
    port = _free_port()
    luigid = Path(sys.executable).with_name("luigid")
    process = subprocess.Popen([str(luigid), "--address", "127.0.0.1", "--port", str(port),
                                "--state-path", str(tmp_path / "luigid.pickle"),
                                "--logdir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_two_workers_share_the_work_and_solve_each_trial_once(tmp_path, scheduler):
    root = tmp_path
    good_subject(root / "raw", trials=TRIALS)
    tiny_config(root)
    # --no-lock: Luigi refuses a second identical command on one host (exit 10, "already
    # running"); the two workers stand for two machines, where that lock does not reach.
    # --retcode-not-run/-already-running 0: for this worker, a task another worker ran was
    # "not granted run permission" (25) or "being run by another worker" (10); with a shared
    # scheduler that is the normal case, not a fault (docs/operations.md).
    argv, env = luigi_command(root, "BuildDataset", "--scheduler-host", "127.0.0.1",
                              "--scheduler-port", str(scheduler), "--workers", "1",
                              "--worker-keep-alive", "--no-lock", "--retcode-not-run", "0",
                              "--retcode-already-running", "0")
    logs = [root / f"worker_{i}.log" for i in range(2)]
    workers = []
    for log in logs:
        with open(log, "w") as out:
            workers.append(subprocess.Popen(argv, cwd=root, env=env, stdout=out,
                                            stderr=subprocess.STDOUT))
    codes = [w.wait(timeout=1500) for w in workers]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], [t[-2000:] for t in texts]

    # Who ran what, from Luigi's own log lines: every task exactly once across both workers.
    ran = [[m.groups() for m in RAN.finditer(t)] for t in texts]
    everything = Counter(task for worker in ran for task in worker)
    assert all(n == 1 for n in everything.values()), everything
    solved = sorted(trial for (family, _, trial), n in everything.items()
                    if family == "TrackMoco")
    assert solved == sorted(TRIALS)
    assert all(ran), "one worker did nothing: the scheduler did not share the work"

    # The warehouse agrees: one solve row per trial, ground truth for both, nothing corrupt.
    warehouse = root / "warehouse"
    solves = catalog.read_catalog(warehouse, "solves")
    assert sorted(solves["trial"]) == sorted(TRIALS)
    assert (solves["status"] == "Solve_Succeeded").all()
    window_logs = list((root / "artifacts" / "TrackMoco").rglob("window_*/solve.log"))
    assert len(window_logs) == len(TRIALS)
    for trial in TRIALS:
        assert store.leaf_path(warehouse, "kinetics", "S01", trial).exists()
    check = run_warehouse(root, "check")
    assert check.returncode == 0 and "0 warning(s)" in check.stdout, check.stdout
