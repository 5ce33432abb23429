"""Executors run a list of :class:`benchmark.runner.Job` and return their outcomes in job order.

* :class:`LocalExecutor` (default): one job after the other in this process.
* :class:`RayExecutor`: one Ray task per job with the job's declared ``num_cpus``/``num_gpus``, so a
  Ray cluster runs them in parallel. Jobs write to the same ``runs/`` layout; on a multi-node cluster
  the dataset and runs folders must be mounted at the same path on every node (a shared filesystem).
  Ray is the optional extra ``pip install 'gsbench[ray]'``.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmark.runner import Job, JobOutcome, run_job
from gsbench.errors import DependencyError
from gsbench.progress import log, track

EXECUTORS = ("local", "ray")


class LocalExecutor:
    name = "local"

    def run(self, jobs: list[Job]) -> list[JobOutcome]:
        outcomes = []
        for job in track(jobs, "benchmark jobs"):
            log(f"{job.label}: running")
            outcome = run_job(job)
            log(f"{job.label}: {outcome.status}" + (f" ({outcome.error})" if outcome.error else ""))
            outcomes.append(outcome)
        return outcomes


class RayExecutor:
    """Submit each job as a Ray task. ``address``: ``None`` starts a local Ray instance, ``"auto"`` or
    ``"ray://host:10001"`` joins a cluster. ``init_kwargs`` go to ``ray.init`` (e.g. ``num_cpus``)."""

    name = "ray"

    def __init__(self, address: str | None = None, **init_kwargs):
        self.address = address
        self.init_kwargs = init_kwargs

    def run(self, jobs: list[Job]) -> list[JobOutcome]:
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **self.init_kwargs)
        try:
            remote_run = ray.remote(max_retries=0)(run_job)
            pending = {
                remote_run.options(num_cpus=job.num_cpus, num_gpus=job.num_gpus).remote(job): index
                for index, job in enumerate(jobs)
            }
            outcomes: list[JobOutcome | None] = [None] * len(jobs)
            remaining = list(pending)
            while remaining:
                done, remaining = ray.wait(remaining, num_returns=1)
                for ref in done:
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as error:  # the worker died: run_job never returned
                        job = jobs[pending[ref]]
                        outcome = JobOutcome(job, "failed", f"ray task failed: {error}", 0.0, "")
                    outcomes[pending[ref]] = outcome
                    log(
                        f"{outcome.job.label}: {outcome.status}"
                        + (f" ({outcome.error})" if outcome.error else "")
                    )
            return [o for o in outcomes if o is not None]
        finally:
            if started_here:
                ray.shutdown()


def import_ray():
    try:
        import ray
    except ImportError as error:
        raise DependencyError(
            "--executor ray needs the Ray package",
            fix="pip install 'gsbench[ray]' (or: pip install 'ray[default]')",
        ) from error
    return ray


def make_executor(name: str, address: str | None = None) -> LocalExecutor | RayExecutor:
    factories: dict[str, Callable[[], LocalExecutor | RayExecutor]] = {
        "local": LocalExecutor,
        "ray": lambda: RayExecutor(address=address),
    }
    if name not in factories:
        from gsbench.errors import ConfigError

        raise ConfigError(f"unknown executor {name!r}", fix=f"use one of: {', '.join(EXECUTORS)}")
    return factories[name]()
