"""Jobs: the job spec (TOML), the one place that builds a Dask client, and running a job.

- :mod:`~updm_dask.jobs.spec`: parse and validate a job spec into a typed :class:`JobSpec`.
- :mod:`~updm_dask.jobs.cluster`: find or start the Dask cluster a job runs on.
- :mod:`~updm_dask.jobs.run`: discover, batch, process and commit scenes; resume; report.
"""

from .cluster import ClientInfo, ClusterError, connect
from .run import JobReport, SceneFailure, job_science, open_job_cube, run_job, run_job_file
from .spec import JobSpec, load_job_spec, parse_job_spec

__all__ = [
    "ClientInfo",
    "ClusterError",
    "JobReport",
    "JobSpec",
    "SceneFailure",
    "connect",
    "job_science",
    "load_job_spec",
    "open_job_cube",
    "parse_job_spec",
    "run_job",
    "run_job_file",
]
