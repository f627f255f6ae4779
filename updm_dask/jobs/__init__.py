"""Jobs: the job spec (TOML), the one place that builds a Dask client, and running a job.

- :mod:`~updm_dask.jobs.keys`: the table of job-spec keys, its JSON Schema and docs table.
- :mod:`~updm_dask.jobs.spec`: parse and validate a job spec into a typed :class:`JobSpec`.
- :mod:`~updm_dask.jobs.cluster`: find or start the Dask cluster a job runs on.
- :mod:`~updm_dask.jobs.run`: discover, batch, process and commit scenes; resume; report.
"""

from .cluster import ClientInfo, ClusterError, connect
from .keys import JOB_SPEC_KEYS, SpecKey, format_job_spec_keys, job_spec_schema
from .run import (
    JobProgress,
    JobReport,
    SceneFailure,
    job_science,
    open_job_cube,
    run_job,
    run_job_file,
)
from .spec import JobSpec, load_job_spec, parse_job_spec

__all__ = [
    "JOB_SPEC_KEYS",
    "ClientInfo",
    "ClusterError",
    "JobProgress",
    "JobReport",
    "JobSpec",
    "SceneFailure",
    "SpecKey",
    "connect",
    "format_job_spec_keys",
    "job_science",
    "job_spec_schema",
    "load_job_spec",
    "open_job_cube",
    "parse_job_spec",
    "run_job",
    "run_job_file",
]
