"""Jobs: the job spec (TOML), the one place that builds a Dask client, and running a job.

- :mod:`~updm_dask.jobs.keys`: the table of job-spec keys, its JSON Schema and docs table.
- :mod:`~updm_dask.jobs.spec`: parse and validate a job spec into a typed :class:`JobSpec`.
- :mod:`~updm_dask.jobs.cluster`: find or start the Dask cluster a job runs on.
- :mod:`~updm_dask.jobs.run`: run a job: batch, process and commit scenes; resume.
- :mod:`~updm_dask.jobs.discovery`: find a job's scenes (inputs, STAC), one product per id.
- :mod:`~updm_dask.jobs.placing`: the job's grid and cube; a scene on the cube grid.
- :mod:`~updm_dask.jobs.report`: what a job reports (:class:`JobReport`, progress, failures).
- :mod:`~updm_dask.jobs.tiles`: a job over a tiled collection, (scene, tile) pairs.
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
