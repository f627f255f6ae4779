"""deploy/: the manifests parse, agree with each other and run commands that exist.

CI cannot run Docker, Kubernetes or Slurm, so these tests check what can be checked
without them: every YAML file parses; every manifest names the one image
``ghcr.io/updm-dask/updm-dask:<package version>``; every ``updm run`` command parses with the
real ``updm`` argument parser and every ``dask scheduler`` / ``dask worker`` flag appears in
the real ``--help`` of the installed dask CLI; compose and deploy/local/start-cluster.sh
start identical workers (and the script really starts a cluster); deploy/dask.yaml uses only
keys of distributed's own schema; the lock pins exactly the installed runtime closure; the
Dockerfile's base is pinned; and the dask-kubernetes resources carry the fields the
operator's CRDs require (DaskJob: spec.job + spec.cluster; DaskCluster: spec.scheduler.spec
+ .service and spec.worker.spec; DaskAutoscaler: spec.cluster/minimum/maximum).
"""

from __future__ import annotations

import copy
import importlib.metadata as md
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import dask.config
import pytest
import yaml
from _dask_procs import dask_command
from dask.utils import parse_bytes, parse_timedelta
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import updm_dask
from updm_dask.cli import JobProgressBar
from updm_dask.cli import app as cli
from updm_dask.jobs.spec import load_job_spec, parse_job_spec

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
IMAGE_REPOSITORY = "ghcr.io/updm-dask/updm-dask"
IMAGE = f"{IMAGE_REPOSITORY}:{updm_dask.__version__}"
DASK_CONFIG_PATH = "/etc/updm/dask.yaml"
START_SCRIPT = DEPLOY / "local" / "start-cluster.sh"
STOP_SCRIPT = DEPLOY / "local" / "stop-cluster.sh"

# Flags that say where a process listens or how it finds the scheduler: these may differ
# between a container network and one machine's loopback; everything else must not.
PLACEMENT_FLAGS = {"--host", "--scheduler-file"}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _yaml(path: Path):
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _yaml_docs(path: Path) -> list:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _k8s_docs() -> list[dict]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in _yaml_docs(p)]


def _by_kind(kind: str) -> list[dict]:
    return [d for d in _k8s_docs() if d.get("kind") == kind]


def _pod_specs(obj) -> list[dict]:
    """Every PodSpec (a mapping with ``containers``) inside a manifest."""
    found = []
    if isinstance(obj, dict):
        if isinstance(obj.get("containers"), list):
            found.append(obj)
        for value in obj.values():
            found += _pod_specs(value)
    elif isinstance(obj, list):
        for value in obj:
            found += _pod_specs(value)
    return found


def _containers(obj) -> list[dict]:
    return [c for spec in _pod_specs(obj) for c in spec["containers"]]


def _command(container: dict) -> list[str]:
    return [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]


def _compose_defaults(value: str) -> str:
    """Resolve compose ``${VAR:-default}`` to its default (what an empty environment gets)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def _compose() -> dict:
    return _yaml(DEPLOY / "compose.yaml")


def _compose_command(service: str) -> list[str]:
    command = _compose()["services"][service]["command"]
    if isinstance(command, str):
        command = shlex.split(command)
    return [_compose_defaults(str(a)) for a in command]


def _options(args: list[str]) -> dict[str, str | None]:
    """``--flag value`` / ``--flag`` pairs of a command line (positionals are dropped)."""
    out: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        if args[i].startswith("--"):
            flag, eq, value = args[i].partition("=")
            if eq:
                out[flag] = value
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                out[flag] = args[i + 1]
                i += 1
            else:
                out[flag] = None
        i += 1
    return out


def _dask_subcommand(args: list[str]) -> tuple[str, list[str]] | None:
    """``("worker", rest)`` for ``dask worker ...`` / ``dask-worker ...`` commands."""
    for i, word in enumerate(args):
        name = Path(word).name
        if name == "dask" and i + 1 < len(args) and args[i + 1] in ("scheduler", "worker"):
            return args[i + 1], args[i + 2 :]
        if name in ("dask-scheduler", "dask-worker"):
            return name.split("-")[1], args[i + 1 :]
    return None


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("UPDM_", "DASK_"))}


def _dry_run(*extra: str, env: dict[str, str] | None = None) -> list[list[str]]:
    result = subprocess.run(
        ["bash", str(START_SCRIPT), "--dry-run", *extra],
        env=_clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def _all_dask_commands() -> list[tuple[str, str, list[str]]]:
    """(where, "scheduler"/"worker", arguments) of every dask process the manifests start."""
    found = []
    for service in ("scheduler", "worker"):
        sub = _dask_subcommand(_compose_command(service))
        assert sub, f"compose service {service} runs no dask {service}"
        found.append((f"compose:{service}", *sub))
    for doc in _k8s_docs():
        for container in _containers(doc):
            sub = _dask_subcommand(_command(container))
            if sub:
                found.append((f"{doc['kind']}/{doc['metadata']['name']}", *sub))
    for line in _dry_run():
        sub = _dask_subcommand(line)
        assert sub, f"start-cluster.sh runs something else: {line}"
        found.append(("start-cluster.sh", *sub))
    # The dask Helm chart adds these flags itself (templates/dask-worker-deployment.yaml).
    helm = _yaml(DEPLOY / "helm" / "values.yaml")["worker"]
    chart_args = ["--nthreads", "2", "--memory-limit", "8G", "--no-dashboard"]
    chart_args += ["--dashboard-address", "8790"]
    found.append(("helm:worker", "worker", chart_args + [str(a) for a in helm["extraArgs"]]))
    # dask-jobqueue builds `python -m distributed.cli.dask_worker ...` from its config.
    jobqueue = _yaml(DEPLOY / "hpc" / "jobqueue.yaml")["jobqueue"]
    for system, conf in jobqueue.items():
        args = ["--nthreads", "4", "--nworkers", "8", "--memory-limit", "15GB", "--name", "x"]
        args += ["--nanny", "--death-timeout", str(conf["death-timeout"])]
        args += ["--local-directory", str(conf["local-directory"])]
        found.append((f"jobqueue:{system}", "worker", args + conf["worker-extra-args"]))
    return found


@pytest.fixture(scope="module")
def dask_help() -> dict[str, set[str]]:
    """Flags listed by ``dask scheduler --help`` and ``dask worker --help`` of this env."""
    flags = {}
    for sub in ("scheduler", "worker"):
        result = subprocess.run(
            [*dask_command(), sub, "--help"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        flags[sub] = set(re.findall(r"(--[a-z][a-z0-9-]*)", result.stdout))
    return flags


# --------------------------------------------------------------------------------------
# every file parses; one image everywhere
# --------------------------------------------------------------------------------------

YAML_FILES = sorted(p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*.yaml"))


def test_yaml_files_are_the_expected_set():
    expected = {
        "compose.yaml",
        "dask.yaml",
        "helm/values.yaml",
        "hpc/jobqueue.yaml",
        "kubernetes/configmap.yaml",
        "kubernetes/daskautoscaler.yaml",
        "kubernetes/daskcluster.yaml",
        "kubernetes/daskjob.yaml",
        "kubernetes/job.yaml",
    }
    assert set(YAML_FILES) == expected


@pytest.mark.parametrize("name", YAML_FILES)
def test_yaml_parses_to_mappings(name):
    docs = _yaml_docs(DEPLOY / name)
    assert docs, f"{name} is empty"
    assert all(isinstance(d, dict) and d for d in docs), name
    if name.startswith("kubernetes/"):
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), name
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


def test_every_image_reference_is_the_package_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", updm_dask.__version__), updm_dask.__version__
    texts = [p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".lock"]
    refs = []
    for path in texts:
        for tag in re.findall(re.escape(IMAGE_REPOSITORY) + r"(?::([\w.+-]+))?", path.read_text()):
            refs.append((path.relative_to(DEPLOY).as_posix(), tag))
    bad = [(p, tag) for p, tag in refs if tag not in (updm_dask.__version__, "")]
    assert not bad, f"image tags other than {updm_dask.__version__}: {bad}"
    assert {p for p, _ in refs} >= {
        "Dockerfile",
        "compose.yaml",
        "helm/values.yaml",
        "kubernetes/daskjob.yaml",
        "kubernetes/daskcluster.yaml",
        "kubernetes/job.yaml",
        "README.md",
    }


def test_every_container_runs_the_image():
    containers = [c for doc in _k8s_docs() for c in _containers(doc)]
    # DaskJob: job + worker + scheduler; DaskCluster: worker + scheduler; Job: job.
    assert len(containers) == 6
    assert {c["image"] for c in containers} == {IMAGE}
    services = _compose()["services"]
    for name in ("scheduler", "worker", "job"):
        assert services[name]["image"] == IMAGE, name
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    helm = _yaml(DEPLOY / "helm" / "values.yaml")
    for role in ("scheduler", "worker"):
        image = helm[role]["image"]
        assert f"{image['repository']}:{image['tag']}" == IMAGE, role
    assert helm["jupyter"]["enabled"] is False


def test_third_party_images_are_pinned():
    for name, service in _compose()["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), (name, image)


# --------------------------------------------------------------------------------------
# commands are real
# --------------------------------------------------------------------------------------


def _updm_commands() -> list[tuple[str, list[str], list[str]]]:
    """(where, updm arguments, paths mounted in that container) of every job runner."""
    found = []
    service = _compose()["services"]["job"]
    mounts = [_compose_defaults(v).split(":")[1] for v in service["volumes"]]
    found.append(("compose:job", _compose_command("job"), mounts))
    for doc in _k8s_docs():
        for spec in _pod_specs(doc):
            for container in spec["containers"]:
                args = _command(container)
                if args and args[0] == "updm":
                    paths = [m["mountPath"] for m in container.get("volumeMounts", [])]
                    found.append((f"{doc['kind']}/{doc['metadata']['name']}", args, paths))
    return found


def test_updm_run_commands_parse_with_the_real_cli():
    commands = _updm_commands()
    assert [where for where, _, _ in commands] == [
        "compose:job",
        "DaskJob/updm-job",
        "Job/updm-run",
    ]
    parser = cli._build_parser()
    for where, args, mounts in commands:
        assert args[0] == "updm", where
        parsed = parser.parse_args(args[1:])
        assert parsed.command == "run" and parsed.func is cli._cmd_run, where
        # The job spec it names is mounted into the same container.
        assert parsed.job in mounts, (where, parsed.job, mounts)
        if parsed.scheduler:
            assert re.fullmatch(r"tcp://[a-z0-9.-]+:\d+", parsed.scheduler), where


def test_the_cli_check_rejects_a_flag_that_does_not_exist(capsys):
    # The check above is only as good as the parser's strictness.
    with pytest.raises(SystemExit):
        cli._build_parser().parse_args(["run", "/jobs/job.toml", "--schedular", "tcp://x:1"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_dask_flags_exist_in_the_installed_cli(dask_help):
    commands = _all_dask_commands()
    assert {sub for _, sub, _ in commands} == {"scheduler", "worker"}
    for where, sub, args in commands:
        unknown = {f.partition("=")[0] for f in args if f.startswith("--")} - dask_help[sub]
        assert not unknown, f"{where}: dask {sub} has no {sorted(unknown)}"


def test_dask_flag_values_parse():
    for where, _sub, args in _all_dask_commands():
        opts = _options(args)
        for flag in ("--nthreads", "--nworkers", "--port"):
            if opts.get(flag) is not None:
                assert int(opts[flag]) >= 0, (where, flag)
        if opts.get("--memory-limit"):
            assert parse_bytes(opts["--memory-limit"]) > 2**28, where
        for flag in ("--death-timeout", "--lifetime", "--lifetime-stagger"):
            if opts.get(flag):
                assert parse_timedelta(opts[flag]) > 0, (where, flag)


# --------------------------------------------------------------------------------------
# compose <-> deploy/local/start-cluster.sh
# --------------------------------------------------------------------------------------


def _comparable(args: list[str]) -> dict[str, str | None]:
    opts = {k: v for k, v in _options(args).items() if k not in PLACEMENT_FLAGS}
    if opts.get("--dashboard-address"):
        # Same port; the interface differs (container: all of its own, machine: loopback).
        opts["--dashboard-address"] = opts["--dashboard-address"].rpartition(":")[2]
    return opts


def test_local_script_starts_what_compose_starts():
    lines = _dry_run()
    scheduler, *workers = lines
    compose_scheduler = _dask_subcommand(_compose_command("scheduler"))
    compose_worker = _dask_subcommand(_compose_command("worker"))
    assert _dask_subcommand(scheduler)[0] == "scheduler"
    assert _comparable(_dask_subcommand(scheduler)[1]) == _comparable(compose_scheduler[1])
    replicas = _compose_defaults(str(_compose()["services"]["worker"]["deploy"]["replicas"]))
    assert len(workers) == int(replicas)
    for line in workers:
        sub, args = _dask_subcommand(line)
        assert sub == "worker"
        assert _comparable(args) == _comparable(compose_worker[1])
        # Both find the scheduler that the scheduler command announces.
        assert _options(args)["--scheduler-file"] == _options(scheduler)["--scheduler-file"]
    assert compose_worker[1][0] == "tcp://scheduler:" + _options(compose_scheduler[1])["--port"]


def test_local_script_and_compose_read_the_same_variables():
    compose_text = (DEPLOY / "compose.yaml").read_text()
    script_text = START_SCRIPT.read_text()
    pairs = set(re.findall(r"\$\{(UPDM_WORKER_\w+):-([^}]*)\}", compose_text))
    assert {name for name, _ in pairs} >= {
        "UPDM_WORKER_PROCS",
        "UPDM_WORKER_THREADS",
        "UPDM_WORKER_MEMORY",
        "UPDM_WORKER_REPLICAS",
    }
    for name, default in pairs:
        assert f"${{{name}:-{default}}}" in script_text, name
    # Changing a variable changes both the same way.
    env = {**_clean_env(), "UPDM_WORKER_THREADS": "3", "UPDM_WORKER_MEMORY": "1GiB"}
    _, worker = _dry_run("1", env=env)
    opts = _options(worker)
    assert (opts["--nthreads"], opts["--memory-limit"]) == ("3", "1GiB")


def test_local_script_rejects_a_bad_worker_count():
    result = subprocess.run(
        ["bash", str(START_SCRIPT), "many"], env=_clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "got 'many'" in result.stderr


def test_shell_scripts_have_valid_syntax():
    for script in (START_SCRIPT, STOP_SCRIPT):
        assert os.access(script, os.X_OK), script
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_local_script_starts_a_real_cluster_and_stops_it(tmp_path):
    import psutil

    from updm_dask.jobs.cluster import connect

    env = {
        **_clean_env(),
        "UPDM_CLUSTER_DIR": str(tmp_path / "cluster"),
        "UPDM_SCHEDULER_PORT": "0",
        "UPDM_DASHBOARD_ADDRESS": "127.0.0.1:0",
        "UPDM_WORKER_THREADS": "1",
        "UPDM_WORKER_MEMORY": "512MiB",
        "UPDM_START_TIMEOUT": "120",
    }
    dask_bin = dask_command()
    if len(dask_bin) > 1:
        pytest.skip("no dask console script next to this interpreter")
    env["DASK_BIN"] = dask_bin[0]
    cluster_dir = tmp_path / "cluster"
    started = subprocess.run(
        ["bash", str(START_SCRIPT), "1"], env=env, capture_output=True, text=True, timeout=300
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pids = [int((cluster_dir / f"{n}.pid").read_text()) for n in ("scheduler", "worker-1")]
        with dask.config.set({"scheduler-address": None}):
            old = os.environ.pop("DASK_SCHEDULER_ADDRESS", None)
            try:
                info = connect(scheduler_file=cluster_dir / "scheduler.json", timeout=30)
            finally:
                if old is not None:
                    os.environ["DASK_SCHEDULER_ADDRESS"] = old
        try:
            workers = info.client.scheduler_info(n_workers=-1)["workers"]
            assert [(w["nthreads"], w["memory_limit"]) for w in workers.values()] == [
                (1, 512 * 2**20)
            ]
            # The processes read deploy/dask.yaml (DASK_CONFIG set by the script).
            allowed = info.client.run_on_scheduler(
                lambda: __import__("dask").config.get("distributed.scheduler.allowed-failures")
            )
            ours = _yaml(DEPLOY / "dask.yaml")["distributed"]["scheduler"]
            assert allowed == ours["allowed-failures"]
        finally:
            info.close()
    finally:
        stopped = subprocess.run(
            ["bash", str(STOP_SCRIPT)], env=env, capture_output=True, text=True, timeout=300
        )
    assert stopped.returncode == 0, stopped.stderr
    assert not list(cluster_dir.glob("*.pid"))

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert all(gone(pid) for pid in pids)


# --------------------------------------------------------------------------------------
# compose specifics
# --------------------------------------------------------------------------------------


def test_compose_services_and_dask_config_mount():
    services = _compose()["services"]
    assert set(services) == {"objectstore", "create-bucket", "scheduler", "worker", "job"}
    for name in ("scheduler", "worker", "job"):
        service = services[name]
        assert service["environment"]["DASK_CONFIG"] == DASK_CONFIG_PATH, name
        assert f"./dask.yaml:{DASK_CONFIG_PATH}:ro" in service["volumes"], name
    assert services["job"]["depends_on"]["create-bucket"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["worker"]["depends_on"]["scheduler"]["condition"] == "service_healthy"


def test_compose_keeps_credentials_in_the_env_file():
    services = _compose()["services"]
    for name, service in services.items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(e.partition("=")[::2] for e in environment)
        keys = set(environment)
        assert not {k for k in keys if k.startswith("AWS_")}, f"{name}: AWS settings inline"
    # Everything that touches the store reads the same env file.
    for name in ("create-bucket", "worker", "job"):
        assert services[name]["env_file"] == ["objectstore.env"], name
    assert "env_file" not in services["scheduler"]  # the scheduler never touches data
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "objectstore.env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert example["AWS_ENDPOINT_URL"] == "http://objectstore:5000"
    job = load_job_spec(DEPLOY / "job.example.toml")
    assert job.cube.startswith(f"s3://{example['UPDM_CUBE_BUCKET']}/")
    assert job.inputs == ("/data/scenes",)
    mounts = [_compose_defaults(v) for v in services["job"]["volumes"]]
    assert any(m.endswith(":/data/scenes:ro") for m in mounts)


def test_compose_bucket_step_creates_the_bucket_idempotently(tmp_path):
    # Runs the create-bucket service's script against moto's S3 server, as compose does.
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    script = _compose()["services"]["create-bucket"]["entrypoint"]
    assert script[:2] == ["python", "-c"]
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "objectstore.env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {**_clean_env(), **example, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
        for _ in range(2):  # the second run finds the bucket and leaves it
            run = subprocess.run(
                [sys.executable, "-c", script[2]], env=env, capture_output=True, text=True
            )
            assert run.returncode == 0, run.stderr
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=example["AWS_REGION"],
            aws_access_key_id=example["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=example["AWS_SECRET_ACCESS_KEY"],
        )
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        # moto servers of one process share their state: other tests' buckets may be there
        assert names.count(example["UPDM_CUBE_BUCKET"]) == 1
    finally:
        server.stop()


# --------------------------------------------------------------------------------------
# deploy/dask.yaml
# --------------------------------------------------------------------------------------


def _distributed_schema() -> dict:
    import distributed

    return _yaml(Path(distributed.__file__).with_name("distributed-schema.yaml"))


def _unknown_keys(config: dict, schema: dict, prefix: str = "") -> list[str]:
    unknown = []
    properties = schema.get("properties")
    if properties is None:  # a free-form mapping (e.g. pre-spawn-environ)
        return unknown
    for key, value in config.items():
        if key not in properties:
            unknown.append(prefix + key)
        elif isinstance(value, dict):
            unknown += _unknown_keys(value, properties[key], f"{prefix}{key}.")
    return unknown


def test_dask_yaml_keys_exist_in_distributed_schema():
    ours = _yaml(DEPLOY / "dask.yaml")
    assert set(ours) == {"distributed", "updm"}
    assert _unknown_keys({"distributed": ours["distributed"]}, _distributed_schema()) == []


def test_unknown_key_detection_works():
    # The schema walk finds a misspelt key (so the test above can fail).
    bad = {"distributed": {"scheduler": {"allowed-failure": 3}}}
    assert _unknown_keys(bad, _distributed_schema()) == ["distributed.scheduler.allowed-failure"]


def test_dask_yaml_validates_against_distributed_schema():
    jsonschema = pytest.importorskip("jsonschema")
    collected = dask.config.collect(paths=[str(DEPLOY / "dask.yaml")], env={})
    merged = copy.deepcopy(dask.config.config)
    dask.config.update(merged, collected, priority="new")
    jsonschema.validate({"distributed": merged["distributed"]}, _distributed_schema())


def test_dask_yaml_values_are_coherent():
    collected = dask.config.collect(paths=[str(DEPLOY / "dask.yaml")], env={})
    merged = copy.deepcopy(dask.config.config)
    dask.config.update(merged, collected, priority="new")
    with dask.config.set(merged):
        get = dask.config.get
        assert get("distributed.scheduler.allowed-failures") >= 1
        fractions = [get(f"distributed.worker.memory.{k}") for k in ("target", "spill", "pause")]
        fractions.append(get("distributed.worker.memory.terminate"))
        assert 0 < fractions[0] < fractions[1] < fractions[2] < fractions[3] < 1
        connect = parse_timedelta(get("distributed.comm.timeouts.connect"))
        tcp = parse_timedelta(get("distributed.comm.timeouts.tcp"))
        ttl = parse_timedelta(get("distributed.scheduler.worker-ttl"))
        assert 0 < connect <= tcp < ttl
        assert get("distributed.scheduler.work-stealing") is True
        routes = get("distributed.scheduler.http.routes")
        assert "distributed.http.scheduler.api" in routes and "distributed.http.health" in routes
        for route in routes:
            assert importlib.util.find_spec(route) is not None, route
        # Untouched defaults survive the merge (dicts are merged, not replaced).
        assert get("distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS") == 1


def test_dask_yaml_updm_keys_are_package_keys():
    ours = _yaml(DEPLOY / "dask.yaml")["updm"]
    package = _yaml(Path(updm_dask.__file__).with_name("updm.yaml"))["updm"]
    for section, values in ours.items():
        assert section in package, section
        for key, value in values.items():
            assert key in package[section], f"updm.{section}.{key}"
            assert isinstance(value, int) and value > 0, f"updm.{section}.{key}"
    assert {"spatial"} <= ours["chunks"].keys()
    assert {"batch-size", "conflict-retries"} <= ours["job"].keys()


def test_dask_config_file_wins_over_package_defaults_in_a_new_process():
    # What a deployed process sees: DASK_CONFIG pointing at the file, then updm_dask
    # registering its defaults (which must not override the file).
    code = (
        "import json, dask.config, distributed, updm_dask.config\n"
        "keys = ['updm.chunks.spatial', 'updm.job.batch-size', 'updm.job.conflict-retries',\n"
        "        'updm.chunks.cube', 'distributed.scheduler.allowed-failures']\n"
        "print(json.dumps({k: dask.config.get(k) for k in keys}))\n"
    )
    env = {**_clean_env(), "DASK_CONFIG": str(DEPLOY / "dask.yaml")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    import json

    got = json.loads(out.stdout)
    ours = _yaml(DEPLOY / "dask.yaml")
    package = _yaml(Path(updm_dask.__file__).with_name("updm.yaml"))["updm"]
    assert got["updm.chunks.spatial"] == ours["updm"]["chunks"]["spatial"]
    assert got["updm.job.batch-size"] == ours["updm"]["job"]["batch-size"]
    assert got["updm.job.conflict-retries"] == ours["updm"]["job"]["conflict-retries"]
    assert got["updm.chunks.cube"] == package["chunks"]["cube"]  # not in the file: default
    allowed = ours["distributed"]["scheduler"]["allowed-failures"]
    assert got["distributed.scheduler.allowed-failures"] == allowed


def test_configmap_carries_the_same_dask_yaml_and_a_valid_job_spec():
    (config,) = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "updm-config"]
    # Byte for byte, comments included: edit deploy/dask.yaml, then paste it into the map.
    assert config["data"]["dask.yaml"] == (DEPLOY / "dask.yaml").read_text()
    spec = parse_job_spec(tomllib.loads(config["data"]["job.toml"]), source="job.toml")
    assert spec.cube.startswith("s3://")
    assert spec.inputs == ("/data/scenes",)


def test_readme_tls_snippet_uses_real_config_keys():
    text = (DEPLOY / "README.md").read_text()
    section = text.split("## TLS", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    config = yaml.safe_load(snippet)
    assert config["distributed"]["comm"]["require-encryption"] is True
    assert _unknown_keys(config, _distributed_schema()) == []
    flags = set(re.findall(r"(--tls-[a-z-]+)", section))
    assert flags == {"--tls-ca-file", "--tls-cert", "--tls-key"}


def test_readme_has_the_capacity_section():
    text = (DEPLOY / "README.md").read_text()
    capacity = text.split("## Capacity", 1)[1]
    assert "S = N_pathrow x Y x s" in capacity
    assert "TBD" not in capacity  # the measured figures are filled in
    # The core-hours follow from the stated pixels and the measured rate r.
    rate = int(re.search(r"\| r \| [^|]+\| ([\d,]+) \|", capacity)[1].replace(",", ""))
    core_hours = round(5.2e13 / (rate * 3600))
    assert f"| {core_hours:,} |" in capacity
    # The stated scene count is the product of the stated factors: 1,400 x 50 x 20.
    assert "| S | scenes | 1,400,000 |" in capacity
    assert 1_400 * 50 * 20 == 1_400_000


# --------------------------------------------------------------------------------------
# requirements.lock and Dockerfile
# --------------------------------------------------------------------------------------


def _lock() -> dict[str, tuple[str, str]]:
    pins = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not an exact pin: {line}"
        key = canonicalize_name(name)
        assert key not in pins, f"pinned twice: {name}"
        pins[key] = (name, version)
    return pins


def _project() -> dict:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


def test_lock_pins_every_runtime_dependency_at_the_installed_version():
    pins = _lock()
    for requirement in _project()["dependencies"]:
        name = canonicalize_name(Requirement(requirement).name)
        assert name in pins, f"{name} (pyproject dependency) is not in requirements.lock"
    for name, version in pins.values():
        assert md.version(name) == version, f"{name}: lock {version}, installed {md.version(name)}"
    assert "updm-dask" not in pins


def test_lock_is_the_complete_runtime_closure_and_nothing_more():
    pins = _lock()
    needed: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in _project()["dependencies"]]
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        if key in needed and set(req.extras) <= needed[key]:
            continue
        needed.setdefault(key, set()).update(req.extras)
        for text in md.requires(req.name) or []:
            sub = Requirement(text)
            environments = [{"extra": e} for e in needed[key]] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(e) for e in environments):
                todo.append(sub)
    assert set(pins) == set(needed), (
        f"missing: {sorted(set(needed) - set(pins))}; extra: {sorted(set(pins) - set(needed))}"
    )
    for test_tool in ("pytest", "hypothesis", "ruff", "moto"):
        assert test_tool not in pins


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"^\s*#.*\n", "", text, flags=re.M)
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def test_dockerfile_base_is_pinned_and_it_installs_the_lock():
    steps = _dockerfile()
    froms = [args for ins, args in steps if ins == "FROM"]
    assert len(froms) == 1
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim(-[a-z]+)?", froms[0])
    assert match, f"base image not pinned to a full version: {froms[0]}"
    assert (int(match[1]), int(match[2])) == sys.version_info[:2]
    copies = [args.split() for ins, args in steps if ins == "COPY"]
    lock_copy = [c for c in copies if c[0] == "deploy/requirements.lock"]
    assert lock_copy, "requirements.lock is not copied into the image"
    runs = " ".join(args for ins, args in steps if ins == "RUN")
    assert re.search(
        r"pip install --no-deps (--requirement|-r) " + re.escape(lock_copy[0][1]), runs
    )
    assert "pip check" in runs
    assert re.search(r"pip install --no-deps /src/updm_dask", runs)
    assert not [ins for ins, _ in steps if ins in ("ENTRYPOINT", "CMD")]
    users = [args for ins, args in steps if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    envs = " ".join(args for ins, args in steps if ins == "ENV")
    assert f"DASK_CONFIG={DASK_CONFIG_PATH}" in envs
    assert ["deploy/dask.yaml", DASK_CONFIG_PATH] in copies
    # The Helm chart runs `dask-worker` / `dask-scheduler`: the image provides them.
    assert "/usr/local/bin/dask-worker" in runs and "/usr/local/bin/dask-scheduler" in runs
    assert _yaml(DEPLOY / "helm" / "values.yaml")["worker"]["image"]["dask_worker"] == "dask-worker"


def test_dockerignore_lets_every_copied_file_through():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for ins, args in _dockerfile():
        if ins == "COPY":
            for source in args.split()[:-1]:
                assert source.rstrip("/") in allowed, f"{source} is excluded from the context"
                assert (REPO / source).exists(), source


# --------------------------------------------------------------------------------------
# Kubernetes: fields the dask-kubernetes operator requires, and consistency
# --------------------------------------------------------------------------------------


def _check_cluster_spec(spec: dict, cluster_name: str, where: str) -> None:
    """DaskCluster spec per the operator's CRD: scheduler.spec + .service, worker.spec."""
    assert {"scheduler", "worker"} <= spec.keys(), where
    scheduler, worker = spec["scheduler"], spec["worker"]
    assert {"spec", "service"} <= scheduler.keys(), where
    assert "spec" in worker and isinstance(worker.get("replicas", 1), int), where
    for pod in (scheduler["spec"], worker["spec"]):
        assert pod["containers"], where
        for c in pod["containers"]:
            assert c["name"] and c["image"] == IMAGE, where
    service = scheduler["service"]
    # The operator finds the scheduler pods by these labels and its ports by these names.
    assert service["selector"] == {
        "dask.org/cluster-name": cluster_name,
        "dask.org/component": "scheduler",
    }, where
    ports = {p["name"]: p for p in service["ports"]}
    assert ports["tcp-comm"]["port"] == 8786 and ports["http-dashboard"]["port"] == 8787, where
    container_ports = {p["name"] for c in scheduler["spec"]["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in ports.values()} <= container_ports, where
    (scheduler_container,) = scheduler["spec"]["containers"]
    opts = _options(_command(scheduler_container))
    assert opts["--port"] == "8786", where
    assert opts["--dashboard-address"].rpartition(":")[2] == "8787", where


def _check_pod(pod: dict, where: str) -> None:
    """Mounts name declared volumes; ConfigMaps exist; worker sizes fit their container."""
    config_maps = {d["metadata"]["name"] for d in _by_kind("ConfigMap")}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for c in pod["containers"]:
        for mount in c.get("volumeMounts", []):
            assert mount["name"] in volumes, (where, mount["name"])
            source = volumes[mount["name"]]
            if "configMap" in source and "subPath" in mount:
                (cm,) = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "updm-config"]
                assert mount["subPath"] in cm["data"], (where, mount["subPath"])
        for ref in c.get("envFrom", []):
            if "configMapRef" in ref:
                assert ref["configMapRef"]["name"] in config_maps, where
            if "secretRef" in ref:
                assert ref["secretRef"]["name"] == "updm-objectstore-credentials", where
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert env.get("DASK_CONFIG") == DASK_CONFIG_PATH, where
        assert not {k for k in env if k.startswith("AWS_")}, f"{where}: AWS settings inline"
        opts = _options(_command(c))
        limits = c.get("resources", {}).get("limits", {})
        if opts.get("--memory-limit"):
            assert parse_bytes(opts["--memory-limit"]) < parse_bytes(limits["memory"] + "B"), where
        if opts.get("--nthreads"):
            assert int(opts["--nthreads"]) <= float(limits["cpu"]), where


def test_daskjob_has_the_operator_required_fields():
    (job,) = _by_kind("DaskJob")
    assert job["apiVersion"] == "kubernetes.dask.org/v1"
    spec = job["spec"]
    assert {"job", "cluster"} <= spec.keys()
    pod = spec["job"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    (runner,) = pod["containers"]
    assert runner["name"] and runner["image"] == IMAGE
    # The operator names the job's cluster after the DaskJob.
    _check_cluster_spec(spec["cluster"]["spec"], job["metadata"]["name"], "DaskJob")
    for p in [pod, *_pod_specs(spec["cluster"])]:
        _check_pod(p, "DaskJob")
    # No --scheduler: the runner takes DASK_SCHEDULER_ADDRESS from the operator.
    assert "--scheduler" not in _command(runner)


def test_daskcluster_and_autoscaler_have_the_operator_required_fields():
    (cluster,) = _by_kind("DaskCluster")
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    name = cluster["metadata"]["name"]
    _check_cluster_spec(cluster["spec"], name, "DaskCluster")
    for p in _pod_specs(cluster):
        _check_pod(p, "DaskCluster")
    assert cluster["spec"]["idleTimeout"] == 0
    (scaler,) = _by_kind("DaskAutoscaler")
    assert scaler["apiVersion"] == "kubernetes.dask.org/v1"
    assert {"cluster", "minimum", "maximum"} <= scaler["spec"].keys()
    assert scaler["spec"]["cluster"] == name
    assert all(isinstance(scaler["spec"][k], int) for k in ("minimum", "maximum"))
    assert 0 <= scaler["spec"]["minimum"] <= scaler["spec"]["maximum"]


def test_daskjob_and_daskcluster_run_the_same_pods():
    (job,) = _by_kind("DaskJob")
    (cluster,) = _by_kind("DaskCluster")
    a, b = job["spec"]["cluster"]["spec"], cluster["spec"]
    assert a["worker"]["spec"] == b["worker"]["spec"]
    assert a["scheduler"]["spec"] == b["scheduler"]["spec"]
    assert a["scheduler"]["service"]["ports"] == b["scheduler"]["service"]["ports"]


def test_batch_job_targets_the_daskcluster_scheduler_service():
    (job,) = _by_kind("Job")
    (cluster,) = _by_kind("DaskCluster")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    assert job["spec"]["backoffLimit"] >= 1
    _check_pod(pod, "Job")
    (container,) = pod["containers"]
    address = _options(_command(container))["--scheduler"]
    # The operator's scheduler Service is "<cluster>-scheduler", port tcp-comm 8786.
    assert address == f"tcp://{cluster['metadata']['name']}-scheduler:8786"


def test_the_pod_checks_catch_a_worker_larger_than_its_container():
    (cluster,) = _by_kind("DaskCluster")
    pod = copy.deepcopy(cluster["spec"]["worker"]["spec"])
    pod["containers"][0]["resources"]["limits"]["memory"] = "4Gi"
    with pytest.raises(AssertionError):
        _check_pod(pod, "too small")


# --------------------------------------------------------------------------------------
# HPC: dask-jobqueue config and run_slurm.py
# --------------------------------------------------------------------------------------

# Keys of dask-jobqueue's own jobqueue.yaml for these systems (used when dask-jobqueue is
# not installed, as in CI; when it is, its bundled file is the reference).
JOBQUEUE_KEYS = {
    "name", "cores", "memory", "processes", "interface", "death-timeout", "local-directory",
    "shared-temp-directory", "extra", "worker-extra-args", "shebang", "queue", "account",
    "walltime", "env-extra", "job-script-prologue", "job-extra", "job-extra-directives",
    "job-directives-skip", "log-directory", "scheduler-options",
}  # fmt: skip
JOBQUEUE_SYSTEM_KEYS = {"slurm": {"job-cpu", "job-mem"}, "pbs": {"resource-spec"}}


def _jobqueue_reference() -> dict[str, set[str]]:
    spec = importlib.util.find_spec("dask_jobqueue")
    if spec is not None and spec.origin:
        bundled = _yaml(Path(spec.origin).with_name("jobqueue.yaml"))["jobqueue"]
        return {system: set(bundled[system]) for system in ("slurm", "pbs")}
    return {s: JOBQUEUE_KEYS | extra for s, extra in JOBQUEUE_SYSTEM_KEYS.items()}


def _walltime_seconds(text: str) -> int:
    h, m, s = (int(v) for v in text.split(":"))
    return 3600 * h + 60 * m + s


def test_jobqueue_config_keys_and_sizes():
    config = _yaml(DEPLOY / "hpc" / "jobqueue.yaml")
    assert set(config) == {"jobqueue"}
    reference = _jobqueue_reference()
    assert set(config["jobqueue"]) == {"slurm", "pbs"}
    for system, conf in config["jobqueue"].items():
        assert set(conf) <= reference[system], (system, set(conf) - reference[system])
        assert conf["cores"] % conf["processes"] == 0, system
        assert parse_bytes(conf["memory"]) / conf["processes"] >= 4 * 2**30, system
        assert "$TMPDIR" in conf["local-directory"]


def test_workers_retire_before_the_walltime():
    for system, conf in _yaml(DEPLOY / "hpc" / "jobqueue.yaml")["jobqueue"].items():
        opts = _options([str(a) for a in conf["worker-extra-args"]])
        lifetime = parse_timedelta(opts["--lifetime"])
        stagger = parse_timedelta(opts["--lifetime-stagger"])
        walltime = _walltime_seconds(conf["walltime"])
        # At least 5 minutes between the last retirement and the walltime kill.
        assert lifetime + stagger <= walltime - 300, system
        # Not restarted inside the same batch job, which would be killed at the walltime.
        assert "--no-lifetime-restart" in opts and "--lifetime-restart" not in opts, system


def _run_slurm_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("run_slurm", DEPLOY / "hpc" / "run_slurm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_slurm_without_dask_jobqueue_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # makes the import fail
    module = _run_slurm_module()  # importing the script itself needs no dask_jobqueue
    assert module.main([str(tmp_path / "job.toml")]) == 2
    err = capsys.readouterr().err
    assert "pip install dask-jobqueue" in err


def test_run_slurm_rejects_inverted_job_bounds(capsys, tmp_path):
    module = _run_slurm_module()
    code = module.main([str(tmp_path / "job.toml"), "--minimum-jobs", "5", "--maximum-jobs", "2"])
    assert code == 2
    assert "--minimum-jobs" in capsys.readouterr().err


def test_run_slurm_wires_cluster_config_and_job(monkeypatch, capsys, tmp_path):
    calls: dict = {}

    class FakeSLURMCluster:
        scheduler_address = "tcp://10.0.0.1:8786"

        def __init__(self, **kwargs):
            calls["init"] = kwargs
            calls["walltime"] = dask.config.get("jobqueue.slurm.walltime")
            calls["allowed-failures"] = dask.config.get("distributed.scheduler.allowed-failures")

        def adapt(self, **kwargs):
            calls["adapt"] = kwargs

        def close(self):
            calls["closed"] = True

    class FakeReport:
        exit_code = 1

        def format(self):
            return "report: 1 scene failed"

    def fake_run_job_file(path, **kwargs):
        calls["run"] = (path, kwargs)
        return FakeReport()

    fake = types.ModuleType("dask_jobqueue")
    fake.SLURMCluster = FakeSLURMCluster
    monkeypatch.setitem(sys.modules, "dask_jobqueue", fake)
    monkeypatch.setattr("updm_dask.jobs.run.run_job_file", fake_run_job_file)
    module = _run_slurm_module()
    job = str(tmp_path / "job.toml")
    saved = copy.deepcopy(dask.config.config)  # the script updates the global config
    try:
        code = module.main([job, "--maximum-jobs", "7", "--python", "/opt/py/bin/python"])
    finally:
        dask.config.config.clear()
        dask.config.config.update(saved)
    assert code == 1
    assert "report: 1 scene failed" in capsys.readouterr().out
    jobqueue = _yaml(DEPLOY / "hpc" / "jobqueue.yaml")["jobqueue"]["slurm"]
    ours = _yaml(DEPLOY / "dask.yaml")["distributed"]["scheduler"]
    assert calls["walltime"] == jobqueue["walltime"]
    assert calls["allowed-failures"] == ours["allowed-failures"]
    assert calls["init"]["python"] == "/opt/py/bin/python"
    assert calls["init"]["job_script_prologue"][-1] == (
        f"export DASK_CONFIG={shlex.quote(str((DEPLOY / 'dask.yaml').resolve()))}"
    )
    assert calls["adapt"] == {"minimum_jobs": 1, "maximum_jobs": 7}
    run_path, run_options = calls["run"]
    assert run_path == job
    assert run_options["scheduler"] == "tcp://10.0.0.1:8786"
    assert isinstance(run_options["progress"], JobProgressBar)  # the bar `updm run` draws
    assert callable(run_options["echo"])
    assert calls["closed"] is True
