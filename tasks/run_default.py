"""`make run`: the whole chain (RunAll: dataset, training, evaluation) on the built-in synthetic
cohort, then where to look.

The cohort is written into `[paths] raw` when that folder holds no subjects yet; its size comes
from `[cohort]` in luigi.cfg. Everything else is the ordinary Luigi chain a lab would run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import luigi

from .base import paths
from .evaluate import RunAll


class cohort(luigi.Config):  # noqa: N801 -- the [cohort] section of luigi.cfg
    subjects = luigi.IntParameter(default=2, description="synthetic subjects")
    seed = luigi.IntParameter(default=0)
    activities = luigi.ListParameter(default=[], description="trial kinds; empty = all")


def ensure_cohort() -> Path:
    from pipeline.cohort import write_cohort

    raw = Path(paths().raw)
    config = cohort()
    written = write_cohort(raw, n_subjects=config.subjects, seed=config.seed,
                           activities=list(config.activities) or None)
    print(f"synthetic cohort in {raw}: {config.subjects} subjects "
          f"({len(written)} files written now)", flush=True)
    return raw


def main() -> int:
    started = time.perf_counter()
    ensure_cohort()
    run_all = RunAll()
    ok = luigi.build([run_all], workers=2, local_scheduler=True, detailed_summary=True)
    minutes = (time.perf_counter() - started) / 60
    warehouse = Path(paths().warehouse).resolve()
    print(f"\nwarehouse: {warehouse}  ({minutes:.1f} min)")
    print(f"failures, if any: {warehouse / 'failures.parquet'}")
    report = run_all.report_path()
    print(f"report: {report}" if report.exists() else "no report: see the summary above")
    return 0 if ok.scheduling_succeeded and ok.status.name == "SUCCESS" else 1


if __name__ == "__main__":
    sys.exit(main())
