"""infra/: the cluster deployment, checked without a cluster (no Docker, no Kubernetes here).

- The Ray cluster-launcher YAML goes through what `ray up` runs before it touches the cloud
  (``prepare_config`` then ``validate_config``, i.e. jsonschema against the
  ``ray/autoscaler/ray-schema.json`` that ships inside the installed ray), and broken copies
  are rejected, so the check is known to bite.
- The KubeRay manifests: structure (head without GPU, GPUs requested and limited on every
  worker group, one image everywhere, the Secret by reference, shm, the data volume), and the
  RayCluster as Ray's own KubeRay autoscaler reads it (its CR -> autoscaling-config
  conversion, validated against the same schema).
- The RayJob's command is a real ``dragsaw run`` on a config that exists, with flags the
  installed ``dragsaw run --help`` accepts and overrides that ``dragsaw validate`` accepts.
- No credential is written anywhere under infra/.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
LAUNCHER = INFRA / "cluster-launcher" / "aws-gpu.yaml"
RAYCLUSTER = INFRA / "kuberay" / "raycluster.yaml"
RAYJOB = INFRA / "kuberay" / "rayjob.yaml"
SECRET_EXAMPLE = INFRA / "kuberay" / "secret.example.yaml"
DATA_PVC = INFRA / "kuberay" / "data-pvc.yaml"
COMPOSE = INFRA / "minio" / "docker-compose.yaml"
MINIO_K8S = INFRA / "minio" / "minio.yaml"

SECRET_NAME = "dragsaw-s3"
WORKDIR = "/home/ray/dragsaw"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _dragsaw() -> str:
    exe = Path(sys.executable).with_name("dragsaw")
    if exe.exists():
        return str(exe)
    found = shutil.which("dragsaw")
    if not found:
        pytest.skip("the dragsaw command is not installed")
    return found


def _documented_image() -> str:
    """The image name of the build command in the Dockerfile's header (`docker build ... -t IMAGE`)."""
    names = re.findall(r"docker build .*?-t\s+(\S+)", DOCKERFILE.read_text())
    assert names, "the Dockerfile's header documents `docker build -f infra/docker/Dockerfile -t IMAGE .`"
    assert len(set(names)) == 1
    return names[0]


def _constraint(name: str) -> str:
    for line in (REPO / "constraints.txt").read_text().splitlines():
        m = re.match(rf"^{re.escape(name)}==(\S+)", line.strip())
        if m:
            return m.group(1)
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def _ray_groups(spec: dict) -> list[tuple[str, dict, bool]]:
    """(name, group spec, is_head) for the head group and every worker group of a RayCluster spec."""
    return [("head", spec["headGroupSpec"], True)] + [
        (g["groupName"], g, False) for g in spec["workerGroupSpecs"]]


def _gpus(resources: dict, kind: str) -> int:
    return int(str(resources.get(kind, {}).get("nvidia.com/gpu", 0)))


# --------------------------------------------------------------------------- every file


def test_infra_has_the_deployment():
    for path in (DOCKERFILE, LAUNCHER, RAYCLUSTER, RAYJOB, SECRET_EXAMPLE, DATA_PVC, COMPOSE, MINIO_K8S,
                 INFRA / "README.md", INFRA / "minio" / "README.md"):
        assert path.is_file(), path
    assert "Nothing here yet" not in (INFRA / "README.md").read_text()


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.y*ml")), ids=lambda p: str(p.relative_to(INFRA)))
def test_yaml_parses_and_says_what_it_is(path):
    assert _load_all(path), f"{path} is empty"
    assert path.read_text().startswith("#"), "every infra YAML opens with a comment: what it is, how to use it"


def test_one_image_everywhere():
    image = _documented_image()
    assert not image.endswith(":latest") and ":" in image, "a tagged image, never :latest"
    found = {}
    for path in (RAYCLUSTER, RAYJOB):
        for doc in _load_all(path):
            for m in re.finditer(r"'image': '([^']+)'", repr(doc)):
                found.setdefault(m.group(1), set()).add(path.name)
    launcher = _load(LAUNCHER)["docker"]
    for key in ("image", "head_image", "worker_image"):
        if key in launcher:
            found.setdefault(launcher[key], set()).add(LAUNCHER.name)
    assert set(found) == {image}, f"Ray images other than the documented {image}: {found}"
    assert image in (INFRA / "README.md").read_text()


# --------------------------------------------------------------------------- the image


def test_dockerfile_builds_dragsaw_on_the_pinned_ray():
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    froms = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    assert froms == [f"rayproject/ray:{_constraint('ray')}-py311-gpu"], froms
    assert re.search(r"^ENV .*NO_ALBUMENTATIONS_UPDATE=1", text, re.MULTILINE)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "runs as the ray image's non-root user"
    assert f"WORKDIR {WORKDIR}" in instructions
    copies = [line for line in instructions if line.startswith("COPY ")]
    assert any(line.split()[-2:] == [".", WORKDIR] for line in copies), "the repository (configs/ too) is copied"
    run = " ".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"pip install (-\S+ \S+ )*\.\s*;", run), "installs the package from the repository"
    assert "-c constraints.txt" not in run, "constraints.txt pins the CPU torch: a GPU image must not pass it as is"
    assert "test -f configs/experiments/quickstart.yaml" in run


def test_dockerignore_keeps_the_package_and_configs_in_the_context():
    patterns = [p.strip() for p in (INFRA / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    needed = ["configs", "configs/experiments/quickstart.yaml", "platform", "workloads", "pyproject.toml",
              "setup.py", "constraints.txt", "README.md"]
    for name in needed:
        assert (REPO / name).exists(), name
        assert not any(fnmatch.fnmatch(name, p) or name.startswith(p.rstrip("/") + "/") for p in patterns), name
    for name in (".git", ".venv", "results", "data"):
        assert name in patterns


# --------------------------------------------------------------------------- the cluster launcher


def _ray_up_checks(config: dict) -> dict:
    """What `ray up` does to a config before any cloud call (ray.autoscaler._private.commands.
    _bootstrap_config): merge the provider's defaults, then validate against ray-schema.json."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def _ray_schema() -> dict:
    import ray.autoscaler

    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    assert path.is_file(), "the schema ships inside the ray package"
    return json.loads(path.read_text())


def test_launcher_config_validates_like_ray_up():
    config = _load(LAUNCHER)
    jsonschema.validate(config, _ray_schema())          # the file as written
    prepared = _ray_up_checks(config)                   # and as `ray up` completes it
    assert prepared["provider"]["type"] == "aws"


def _set(config: dict, path: tuple, value) -> dict:
    broken = copy.deepcopy(config)
    node = broken
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return broken


_DELETE = object()
BREAKAGES = {
    "typo at the top level": (("max_worker",), 4),
    "typo in a node type": (("available_node_types", "gpu-g5-xlarge", "min_worker"), 1),
    "GPU count not an integer": (("available_node_types", "gpu-g5-xlarge", "resources"), {"GPU": "one"}),
    "node type without node_config": (("available_node_types", "gpu-g5-xlarge", "node_config"), _DELETE),
    "unknown docker option": (("docker", "gpus"), "all"),
    "head type that does not exist": (("head_node_type",), "no-such-type"),
}


#: What `ray up` says about each breakage: the schema's error naming the field, or Ray's own check.
REFUSALS = {
    "typo at the top level": (jsonschema.ValidationError, "'max_worker' was unexpected"),
    "typo in a node type": (jsonschema.ValidationError, "'min_worker' was unexpected"),
    "GPU count not an integer": (jsonschema.ValidationError, "'one' is not of type 'integer'"),
    "node type without node_config": (jsonschema.ValidationError, "'node_config' is a required property"),
    "unknown docker option": (jsonschema.ValidationError, "'gpus' was unexpected"),
    "head type that does not exist": (ValueError, "`head_node_type` must be one of `available_node_types`"),
}


@pytest.mark.parametrize("what", sorted(BREAKAGES))
def test_launcher_check_rejects_a_broken_copy(what):
    path, value = BREAKAGES[what]
    error, message = REFUSALS[what]
    broken = _set(_load(LAUNCHER), path, value)
    with pytest.raises(error, match=re.escape(message)):
        _ray_up_checks(broken)


def test_launcher_has_a_cpu_head_and_gpu_workers():
    config = _load(LAUNCHER)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU") == 0, "no trials on the head"
    assert not re.match(r"^(g|p)\d", head["node_config"]["InstanceType"]), "the head is a CPU instance"
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert workers and all(t["resources"].get("GPU", 0) >= 1 for t in workers.values())
    assert all(re.match(r"^(g|p)\d", t["node_config"]["InstanceType"]) for t in workers.values())
    assert any(t.get("min_workers", 0) >= 1 for t in workers.values()), \
        "a GPU node stays up: dragsaw drops GPU requests on a cluster without any GPU"
    assert sum(t.get("max_workers", 0) for t in workers.values()) >= config["max_workers"] > 1
    for t in workers.values():       # workers write results to S3 themselves
        assert "IamInstanceProfile" in t["node_config"]
    for start in config["head_start_ray_commands"]:
        if "ray start" in start:
            assert "--num-gpus=0" in start and "--num-cpus=0" in start
    assert "--env RAY_AUTH_MODE=disabled" in config["docker"]["run_options"]


def test_launcher_mounts_and_commands_refer_to_the_repository():
    config = _load(LAUNCHER)
    for remote, local in config.get("file_mounts", {}).items():
        assert (REPO / local).exists(), f"file_mounts source {local} (relative to the repo root, where ray up runs)"
        assert remote.startswith(WORKDIR)
    for command in config["setup_commands"]:
        for path in re.findall(r"\bconfigs/\S+\.ya?ml", command):
            assert (REPO / path).is_file(), path
    policy = json.loads((INFRA / "cluster-launcher" / "head-policy.json").read_text())
    actions = {s["Action"] for s in policy["Statement"]}
    assert {"iam:PassRole", "ssm:GetParameters"} <= actions


# --------------------------------------------------------------------------- KubeRay


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def test_raycluster_structure():
    cr = _load(RAYCLUSTER)
    assert cr["apiVersion"] == "ray.io/v1" and cr["kind"] == "RayCluster"
    spec = cr["spec"]
    assert spec["rayVersion"] == _constraint("ray")
    assert spec.get("enableInTreeAutoscaling") is True

    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert head["rayStartParams"].get("num-cpus") == "0", "the head runs the driver, not trials"
    for c in _containers(head):
        assert _gpus(c.get("resources", {}), "limits") == 0 and _gpus(c.get("resources", {}), "requests") == 0
    ports = {p["containerPort"] for p in _containers(head)[0]["ports"]}
    assert {6379, 8265, 10001} <= ports

    workers = spec["workerGroupSpecs"]
    assert workers
    for group in workers:
        ray_container = _containers(group)[0]
        limits = _gpus(ray_container["resources"], "limits")
        requests = _gpus(ray_container["resources"], "requests")
        assert limits >= 1 and requests == limits, f"{group['groupName']}: nvidia.com/gpu requested and limited"
        assert group["rayStartParams"].get("num-gpus", str(limits)) == str(limits)
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        tolerations = group["template"]["spec"].get("tolerations", [])
        assert any(t.get("key") == "nvidia.com/gpu" for t in tolerations)
    assert any(g["maxReplicas"] > g["minReplicas"] for g in workers), "autoscaling"
    assert any(g["minReplicas"] >= 1 for g in workers), \
        "a GPU pod stays up: dragsaw drops GPU requests on a cluster without any GPU"

    for name, group, _ in _ray_groups(spec):
        params = group["rayStartParams"]
        assert all(isinstance(v, str) for v in params.values()), f"{name}: KubeRay wants rayStartParams as strings"
        assert not {"address", "port", "block"} & set(params), f"{name}: KubeRay sets these itself"


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=lambda p: p.name)
def test_ray_pods_are_complete(path):
    doc = _load(path)
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    claim = _load(DATA_PVC)["metadata"]["name"]
    for name, group, _ in _ray_groups(spec):
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in _containers(group):
            assert {"secretRef": {"name": SECRET_NAME}} in c.get("envFrom", []), f"{name}: S3 settings from the Secret"
            env = {e["name"]: e for e in c.get("env", [])}
            assert env["NO_ALBUMENTATIONS_UPDATE"]["value"] == "1"
            assert env["RAY_AUTH_MODE"]["value"] in ("disabled", "token")
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name}: cpu/memory {kind}"
            assert c["resources"]["requests"]["cpu"] == c["resources"]["limits"]["cpu"]
            assert c.get("workingDir", WORKDIR) == WORKDIR
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "/dev/shm" in mounts and f"{WORKDIR}/data" in mounts, f"{name}: shm and data volumes"
            shm = volumes[mounts["/dev/shm"]]
            assert shm["emptyDir"]["medium"] == "Memory", f"{name}: /dev/shm for DataLoader workers"
            data = volumes[mounts[f"{WORKDIR}/data"]]
            assert data["persistentVolumeClaim"]["claimName"] == claim, f"{name}: shared dataset volume"
        assert pod.get("securityContext", {}).get("fsGroup") == 100


def test_raycluster_as_rays_kuberay_autoscaler_reads_it():
    """Ray's own conversion of a RayCluster CR into its autoscaling config (what the autoscaler
    sidecar runs on the live object), which ends in validate_config against ray-schema.json."""
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    cr = _load(RAYCLUSTER)
    cr["metadata"].setdefault("namespace", "default")
    derived = _derive_autoscaling_config_from_ray_cr(cr)
    types = derived["available_node_types"]
    head = types[derived["head_node_type"]]
    assert head["resources"]["CPU"] == 0 and head["resources"].get("GPU", 0) == 0
    for group in cr["spec"]["workerGroupSpecs"]:
        node_type = types[group["groupName"]]
        assert node_type["resources"]["GPU"] == _gpus(_containers(group)[0]["resources"], "limits")
        assert node_type["resources"]["CPU"] >= 1
        assert (node_type["min_workers"], node_type["max_workers"]) == (group["minReplicas"], group["maxReplicas"])


def test_rayjob_runs_the_same_cluster_and_cleans_up():
    job = _load(RAYJOB)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] > 0
    assert spec["rayClusterSpec"] == _load(RAYCLUSTER)["spec"], "keep rayjob.yaml's cluster = raycluster.yaml"
    submitter = spec["submitterPodTemplate"]["spec"]
    assert submitter["restartPolicy"] == "Never"
    (container,) = submitter["containers"]
    assert container["image"] == _documented_image()
    # the submitter's shell expands ${VAR} in the entrypoint: every such VAR must be in its env
    env = {e["name"]: e for e in container.get("env", [])}
    for var in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", spec["entrypoint"]):
        assert var in env, f"${var} in the entrypoint is not in the submitter's environment"
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == SECRET_NAME and ref["key"] in _load(SECRET_EXAMPLE)["stringData"]
    assert "envFrom" not in container, "the submitter gets the bucket name only, not the keys"


def _entrypoint() -> list[str]:
    return shlex.split(_load(RAYJOB)["spec"]["entrypoint"])


def _help_flags(*command: str) -> set[str]:
    out = subprocess.run([_dragsaw(), *command, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out.stdout))


def test_rayjob_entrypoint_is_a_real_dragsaw_run():
    words = _entrypoint()
    assert words[:2] == ["dragsaw", "run"]
    spec_path = words[2]
    assert spec_path.startswith("configs/") and (REPO / spec_path).is_file(), spec_path
    for path in re.findall(r"\bconfigs/\S+\.ya?ml", " ".join(words)):
        assert (REPO / path).is_file(), path
    accepted = _help_flags("run")
    used = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    assert used and used <= accepted, f"flags `dragsaw run --help` does not list: {used - accepted}"
    args = dict(pairwise(words))
    assert args["--address"] == "auto", "joins the RayJob's cluster instead of starting Ray in-process"
    assert re.fullmatch(r"s3://\$\{DRAGSAW_BUCKET:\?\}/[\w./-]+", args["--store"]), args["--store"]


def test_rayjob_overrides_are_valid_for_the_spec():
    words = _entrypoint()
    sets = [word for flag, word in pairwise(words) if flag == "--set"]
    assert "resources.gpus=1" in sets
    out = subprocess.run([_dragsaw(), "validate", words[2], *[a for s in sets for a in ("--set", s)]],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_readme_commands_use_real_flags():
    """Every `dragsaw run|resume|leaderboard|status ...` in infra/'s docs and comments uses flags
    the installed CLI accepts, and every configs/ path they mention exists."""
    texts = [p.read_text() for p in INFRA.rglob("*") if p.is_file() and p.suffix in (".md", ".yaml", "")]
    commands: dict[str, set[str]] = {}
    for text in texts:
        joined = re.sub(r"\\\n\s*#?\s*", " ", text)      # shell line continuations
        for m in re.finditer(r"\bdragsaw (run|resume|leaderboard|status) ([^\n`'|;&]*)", joined):
            commands.setdefault(m.group(1), set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2)))
        for path in re.findall(r"\bconfigs/[\w/.-]+\.ya?ml", joined):
            assert (REPO / path).is_file(), path
    assert {"run", "resume", "leaderboard"} <= set(commands)
    for sub, used in commands.items():
        assert used <= _help_flags(sub), f"dragsaw {sub}: {used - _help_flags(sub)}"


# --------------------------------------------------------------------------- credentials

SECRET_KEYS = r"(AWS_SECRET_ACCESS_KEY|aws_secret_access_key|AWS_SESSION_TOKEN|MINIO_ROOT_PASSWORD|RAY_AUTH_TOKEN)"
_ASSIGNMENT = re.compile(SECRET_KEYS + r"""["']?\s*(?::|=)\s*(?!\s*$)([^\s,#}]*)""")
_PLACEHOLDER = re.compile(r"""^["']?(REPLACE_ME|\.\.\.|<[^>]*>|\$.*|"\$.*|'\$.*|)["']?$""")
# Kubernetes env entries: `name: AWS_SECRET_ACCESS_KEY, value: ...` (flow) or on the next line (block).
_NAME_VALUE = re.compile(SECRET_KEYS + r"""["']?\s*,?\s*\n?\s*value:\s*([^\s,}]+)""")


def secret_literals(text: str) -> list[str]:
    """Secret-looking variables given a literal value (a placeholder or a $VARIABLE is fine),
    and anything shaped like an AWS access key id."""
    found = []
    for pattern in (_ASSIGNMENT, _NAME_VALUE):
        for m in pattern.finditer(text):
            if not _PLACEHOLDER.match(m.group(2)):
                found.append(m.group(0))
    found += re.findall(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", text)
    return found


def test_the_secret_scanner_bites():
    fake = "Zx81" * 10
    assert secret_literals(f"AWS_SECRET_ACCESS_KEY: {fake}")
    assert secret_literals(f'  AWS_SECRET_ACCESS_KEY: "{fake}"')
    assert secret_literals(f"export AWS_SECRET_ACCESS_KEY={fake}")
    assert secret_literals(f"--from-literal=AWS_SECRET_ACCESS_KEY={fake}")
    assert secret_literals("key id AKIA" + "ABCDEFGHIJKLMNOP")
    assert secret_literals(f'- {{name: AWS_SECRET_ACCESS_KEY, value: "{fake}"}}')
    assert secret_literals(f"- name: AWS_SECRET_ACCESS_KEY\n  value: {fake}")
    for fine in ('AWS_SECRET_ACCESS_KEY: "REPLACE_ME"', "AWS_SECRET_ACCESS_KEY=...",
                 'AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"', "MINIO_ROOT_PASSWORD: ${MINIO_ROOT_PASSWORD:?x}",
                 'AWS_SECRET_ACCESS_KEY="$(openssl rand -hex 16)"', "AWS_SECRET_ACCESS_KEY /",
                 "key: AWS_SECRET_ACCESS_KEY}}"):
        assert not secret_literals(fine), fine


def test_no_credentials_anywhere_in_infra():
    for path in sorted(INFRA.rglob("*")):
        if path.is_file():
            assert not secret_literals(path.read_text()), f"{path}: {secret_literals(path.read_text())}"


def _containers_of(doc: dict):
    """Every container spec in a manifest, however deep."""
    if isinstance(doc, dict):
        if "image" in doc and "name" in doc:
            yield doc
        for value in doc.values():
            yield from _containers_of(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _containers_of(value)


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB, MINIO_K8S], ids=lambda p: p.name)
def test_manifests_take_credentials_from_the_secret_only(path):
    for doc in _load_all(path):
        for c in _containers_of(doc):
            for e in c.get("env", []):
                if re.fullmatch(SECRET_KEYS + "|AWS_ACCESS_KEY_ID|MINIO_ROOT_USER", e["name"]):
                    assert "value" not in e and e["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME, e
            for source in c.get("envFrom", []):
                assert source == {"secretRef": {"name": SECRET_NAME}}


def test_secret_example_is_a_shape_only():
    secret = _load(SECRET_EXAMPLE)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET_NAME
    data = secret["stringData"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DRAGSAW_BUCKET"} <= set(data)
    assert data["AWS_ACCESS_KEY_ID"] == data["AWS_SECRET_ACCESS_KEY"] == "REPLACE_ME"
    assert "data" not in secret, "no base64 values"


# --------------------------------------------------------------------------- local S3


def test_compose_runs_minio_and_creates_the_bucket():
    compose = _load(COMPOSE)
    services = compose["services"]
    minio = services["minio"]
    assert minio["image"].startswith("minio/minio:RELEASE.")
    assert any(str(p).endswith(":9000") and str(p).startswith("127.0.0.1:") for p in minio["ports"])
    for name, value in minio["environment"].items():
        assert str(value).startswith("${"), f"{name} comes from the shell's environment"
    init = next(s for n, s in services.items() if n != "minio")
    assert init["image"].startswith("minio/mc:RELEASE.")
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb" in " ".join(init["command"])
    readme = (INFRA / "minio" / "README.md").read_text()
    assert "DRAGSAW_S3_ENDPOINT=http://127.0.0.1:9000" in readme


def test_minio_in_kubernetes():
    docs = {d["kind"]: d for d in _load_all(MINIO_K8S)}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Job"} <= set(docs)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("minio/minio:RELEASE.")
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"]
    service = docs["Service"]
    assert service["metadata"]["name"] == "minio"
    assert service["spec"]["selector"].items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    assert 9000 in {p["port"] for p in service["spec"]["ports"]}
    assert 9000 in {p["containerPort"] for p in container["ports"]}
    assert "http://minio:9000" in SECRET_EXAMPLE.read_text()


# --------------------------------------------------------------------------- the guide


def test_infra_readme_walks_through_it():
    text = (INFRA / "README.md").read_text()
    for needle in ("docker build -f infra/docker/Dockerfile", "docker push", "kubectl create secret generic dragsaw-s3",
                   "kubectl apply -f infra/kuberay/raycluster.yaml", "kubectl create -f infra/kuberay/rayjob.yaml",
                   "ray job submit", "--address", "dragsaw leaderboard --store s3://", "dragsaw resume",
                   "ray up infra/cluster-launcher/aws-gpu.yaml", "ray attach", "one leaderboard"):
        assert needle in text, needle
    for path in set(re.findall(r"\binfra/[\w/.-]*\w", text)):
        assert (REPO / path).exists(), path
