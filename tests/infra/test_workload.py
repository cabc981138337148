"""The Workload component under Pulumi mocks: its Kubernetes objects and what matters in them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pytest

from infra.components.workload import (
    EXPIRY_ANNOTATION,
    TRANSFER_HPA_OWNERSHIP,
    Workload,
    WorkloadArgs,
)
from infra.k8s.network_policies import INTERNAL_NLB_ANNOTATIONS, POD_IDENTITY_AGENT_CIDR
from infra.k8s.pod import GPU_RESOURCE, ContainerResources, ServiceSettings
from service import contract
from tests.infra.component_harness import REGION, all_of, one, only, run_under_mocks
from tools.mocks import Registration

DIGEST_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/torch-inference@sha256:" + "ab" * 32
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:torch-inference-api-key-AbCdEf"
GPU_NODE_SELECTOR = {"torch-eks-inference/node-role": "gpu"}
QUERY_URL = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123abcd-0000-4000-a000-0123456789ab"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def gpu_args(**changes: Any) -> WorkloadArgs:
    """A GPU stack's workload, like staging: internal NLB, API key, two to four replicas."""
    args = WorkloadArgs(
        namespace="inference",
        app_name="torch-inference",
        image=DIGEST_IMAGE,
        aws_region="us-east-1",
        service_account_name="torch-inference",
        metrics_query_url=QUERY_URL,
        min_replicas=2,
        max_replicas=4,
        target_cpu_utilization=65,
        gpu_count=1,
        node_selector=GPU_NODE_SELECTOR,
        exposure="internal-nlb",
        secret_arn=SECRET_ARN,
        labels={"stack": "staging"},
    )
    return dataclasses.replace(args, **changes)


def render(args: WorkloadArgs) -> list[Registration]:
    def program() -> None:
        Workload("svc", args)

    return run_under_mocks(program)


@pytest.fixture(scope="module")
def gpu_stack() -> list[Registration]:
    return render(gpu_args())


@pytest.fixture(scope="module")
def cpu_stack() -> list[Registration]:
    return render(gpu_args(gpu_count=0, node_selector={}, exposure="cluster-ip", secret_arn=None))


def pod_spec(resources: list[Registration]) -> dict[str, Any]:
    spec: dict[str, Any] = only(resources, DEPLOYMENT)["spec"]["template"]["spec"]
    return spec


def container(resources: list[Registration]) -> dict[str, Any]:
    containers = pod_spec(resources)["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env_of(resources: list[Registration]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(resources)["env"]}


def test_declares_exactly_the_expected_objects(gpu_stack: list[Registration]) -> None:
    kinds = sorted(r.type.rsplit(":", 1)[1] for r in gpu_stack if r.type.startswith("kubernetes"))
    assert kinds == [
        "Deployment",
        "Namespace",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "ScaledObject",
        "Service",
        "ServiceAccount",
        "TriggerAuthentication",
    ]
    namespaced = [
        r for r in gpu_stack if r.type.startswith("kubernetes") and "Namespace" not in r.type
    ]
    assert {r.inputs["metadata"]["namespace"] for r in namespaced} == {"inference"}


def test_namespace_enforces_restricted_pod_security(gpu_stack: list[Registration]) -> None:
    labels = only(gpu_stack, "kubernetes:core/v1:Namespace")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_pod_runs_restricted_as_the_contract_user(gpu_stack: list[Registration]) -> None:
    pod = pod_spec(gpu_stack)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == contract.RUN_AS_UID
    assert pod["securityContext"]["runAsGroup"] == contract.RUN_AS_GID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container(gpu_stack)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert (sc["runAsUser"], sc["runAsGroup"]) == (contract.RUN_AS_UID, contract.RUN_AS_GID)
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sa = only(gpu_stack, "kubernetes:core/v1:ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == sa["metadata"]["name"] == "torch-inference"


def test_only_the_contract_writable_dir_is_writable_and_in_memory(
    gpu_stack: list[Registration],
) -> None:
    mounts = container(gpu_stack)["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == [contract.WRITABLE_DIR]
    (volume,) = pod_spec(gpu_stack)["volumes"]
    assert volume["name"] == mounts[0]["name"]
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": "256Mi"}


def test_image_is_the_digest_reference(gpu_stack: list[Registration]) -> None:
    assert container(gpu_stack)["image"] == DIGEST_IMAGE


@pytest.mark.parametrize(
    "image",
    [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/torch-inference:latest",
        "torch-inference:1.0",
        "repo@sha256:tooshort",
        "repo@sha512:" + "ab" * 64,
    ],
)
def test_a_tag_or_malformed_reference_is_refused_at_construction(image: str) -> None:
    with pytest.raises(ValueError, match="not pinned by digest"):
        gpu_args(image=image)


def test_a_computed_tag_reference_fails_the_run() -> None:
    with pytest.raises(Exception, match="not pinned by digest"):
        render(gpu_args(image=pulumi.Output.from_input("repo/torch-inference:v1")))


def test_ports_and_probes_come_from_the_contract(gpu_stack: list[Registration]) -> None:
    c = container(gpu_stack)
    (port,) = c["ports"]
    assert port["containerPort"] == contract.DEFAULT_PORT
    p = contract.PROBES
    expected = {
        "livenessProbe": (contract.PATHS.LIVE, p.period_seconds, p.failure_threshold),
        "readinessProbe": (contract.PATHS.READY, p.period_seconds, p.failure_threshold),
        "startupProbe": (
            contract.PATHS.STARTUP,
            p.startup_period_seconds,
            p.startup_failure_threshold,
        ),
    }
    for probe_name, (path, period, threshold) in expected.items():
        probe = c[probe_name]
        assert probe["httpGet"] == {"path": path, "port": port["name"]}
        assert probe["periodSeconds"] == period
        assert probe["failureThreshold"] == threshold
        assert probe["timeoutSeconds"] == p.timeout_seconds


def test_shutdown_timings_come_from_the_contract(gpu_stack: list[Registration]) -> None:
    pre_stop = container(gpu_stack)["lifecycle"]["preStop"]
    assert pre_stop == {"sleep": {"seconds": contract.SHUTDOWN.pre_stop_sleep_seconds}}
    grace = pod_spec(gpu_stack)["terminationGracePeriodSeconds"]
    assert grace == contract.SHUTDOWN.termination_grace_period_seconds
    # The preStop sleep, the drain period and the in-flight drain must all fit in the grace period.
    s = contract.SHUTDOWN
    assert s.pre_stop_sleep_seconds + s.drain_period_seconds + s.drain_seconds < grace


def test_environment_uses_only_contract_names(gpu_stack: list[Registration]) -> None:
    env = env_of(gpu_stack)
    contract_names = {f.default for f in dataclasses.fields(contract.ENV)}
    assert set(env) <= contract_names
    # Everything but the optional model location is set explicitly.
    assert contract_names - set(env) == {contract.ENV.MODEL_URI}
    assert env[contract.ENV.PORT] == str(contract.DEFAULT_PORT)
    assert env[contract.ENV.API_KEY_SECRET_ARN] == SECRET_ARN
    assert env[contract.ENV.AWS_REGION] == "us-east-1"
    assert env[contract.ENV.DEVICE] == "cuda"
    assert env[contract.ENV.MAX_BATCH_SIZE] == str(contract.DEFAULT_MAX_BATCH_SIZE)


def test_settings_and_model_uri_reach_the_environment() -> None:
    settings = ServiceSettings(model_uri="s3://models/digits/", max_batch_size=8, log_level="DEBUG")
    env = env_of(render(gpu_args(settings=settings)))
    assert env[contract.ENV.MODEL_URI] == "s3://models/digits/"
    assert env[contract.ENV.MAX_BATCH_SIZE] == "8"
    assert env[contract.ENV.LOG_LEVEL] == "DEBUG"


def test_gpu_pod_requests_equal_limits_and_tolerates_the_gpu_taint(
    gpu_stack: list[Registration],
) -> None:
    resources = container(gpu_stack)["resources"]
    assert resources["requests"][GPU_RESOURCE] == resources["limits"][GPU_RESOURCE] == "1"
    pod = pod_spec(gpu_stack)
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    assert pod["nodeSelector"] == GPU_NODE_SELECTOR


def test_two_gpus_per_pod_are_requested_and_limited() -> None:
    resources = container(render(gpu_args(gpu_count=2)))["resources"]
    assert resources["requests"][GPU_RESOURCE] == resources["limits"][GPU_RESOURCE] == "2"


def test_cpu_stack_has_no_gpu_limit_no_toleration_and_cpu_device(
    cpu_stack: list[Registration],
) -> None:
    resources = container(cpu_stack)["resources"]
    assert GPU_RESOURCE not in resources["requests"]
    assert GPU_RESOURCE not in resources["limits"]
    pod = pod_spec(cpu_stack)
    assert "tolerations" not in pod
    assert "nodeSelector" not in pod
    env = env_of(cpu_stack)
    assert env[contract.ENV.DEVICE] == "cpu"
    assert contract.ENV.API_KEY_SECRET_ARN not in env


def test_cpu_and_memory_have_requests_and_limits(gpu_stack: list[Registration]) -> None:
    resources = container(gpu_stack)["resources"]
    defaults = ContainerResources()
    assert resources["requests"]["cpu"] == defaults.cpu_request
    assert resources["limits"]["memory"] == defaults.memory_limit


def test_rollout_never_drops_serving_pods_and_spreads_over_zones_and_hosts(
    gpu_stack: list[Registration],
) -> None:
    spec = only(gpu_stack, DEPLOYMENT)["spec"]
    assert "replicas" not in spec  # the HPA owns the replica count
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    keys = [c["topologyKey"] for c in spec["template"]["spec"]["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for constraint in spec["template"]["spec"]["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_selectors_match_the_pod_labels(gpu_stack: list[Registration]) -> None:
    deployment = only(gpu_stack, DEPLOYMENT)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        only(gpu_stack, SERVICE)["spec"]["selector"],
        only(gpu_stack, "kubernetes:policy/v1:PodDisruptionBudget")["spec"]["selector"][
            "matchLabels"
        ],
        only(gpu_stack, NETWORK_POLICY, "svc-allow-service")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector
        assert selector.items() <= pod_labels.items()


def test_scaled_object_bounds_and_targets_come_from_the_args(
    gpu_stack: list[Registration],
) -> None:
    spec = only(gpu_stack, SCALED_OBJECT)["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 4)
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": only(gpu_stack, DEPLOYMENT)["metadata"]["name"],
    }
    by_name = {t["name"]: t for t in spec["triggers"]}
    assert list(by_name) == ["in-flight", "request-rate", "queue-time", "cpu-floor"]
    assert by_name["in-flight"]["metadata"]["threshold"] == "28"
    assert by_name["request-rate"]["metadata"]["threshold"] == "639"
    assert by_name["in-flight"]["metadata"]["serverAddress"] == QUERY_URL
    assert by_name["cpu-floor"]["metadata"] == {"value": "65"}
    hpa = spec["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_the_scaled_object_takes_over_the_hpa_an_older_version_left(
    gpu_stack: list[Registration],
) -> None:
    # Without the annotation KEDA's webhook refuses the ScaledObject while the old HPA (same
    # Deployment, named after the app) still exists: it is only deleted after the update.
    scaled = only(gpu_stack, SCALED_OBJECT)
    assert scaled["metadata"]["annotations"] == {TRANSFER_HPA_OWNERSHIP: "true"}
    hpa = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa["name"] == "torch-inference"  # the name the CPU HPA had (metadata.name = app)


def test_no_cpu_only_hpa_is_declared(gpu_stack: list[Registration]) -> None:
    # KEDA creates the HPA from the ScaledObject; a second, CPU-only one would fight it.
    assert not [r for r in gpu_stack if "HorizontalPodAutoscaler" in r.type]


def test_off_hours_scale_to_zero_adds_the_cron_window() -> None:
    resources = render(gpu_args(working_hours=("0 8 * * 1-5", "0 19 * * 1-5", "Europe/Berlin")))
    spec = only(resources, SCALED_OBJECT)["spec"]
    assert spec["minReplicaCount"] == 0
    (cron,) = [t for t in spec["triggers"] if t["type"] == "cron"]
    assert cron["metadata"]["desiredReplicas"] == "2"  # min_replicas, during working hours
    assert cron["metadata"]["timezone"] == "Europe/Berlin"


def test_the_scaled_object_waits_for_its_trigger_authentication(
    gpu_stack: list[Registration],
) -> None:
    auth = only(gpu_stack, "kubernetes:keda.sh/v1alpha1:TriggerAuthentication")
    assert auth["spec"] == {"podIdentity": {"provider": "aws"}}
    triggers = only(gpu_stack, SCALED_OBJECT)["spec"]["triggers"]
    names = {t["authenticationRef"]["name"] for t in triggers if "authenticationRef" in t}
    assert names == {auth["metadata"]["name"]}


def test_pdb_lets_one_pod_go_at_a_time(gpu_stack: list[Registration]) -> None:
    spec = only(gpu_stack, "kubernetes:policy/v1:PodDisruptionBudget")["spec"]
    assert spec["maxUnavailable"] == 1
    assert "minAvailable" not in spec
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_network_policies_deny_by_default(gpu_stack: list[Registration]) -> None:
    deny = only(gpu_stack, NETWORK_POLICY, "svc-default-deny")["spec"]
    assert deny["podSelector"] == {}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny
    assert "egress" not in deny


def _rules(rules: list[dict[str, Any]]) -> set[tuple[str, int, str]]:
    """(peer, port, protocol) triples; peer is the CIDR, the selected pods' label, or 'any'."""
    found = set()
    for rule in rules:
        peers = rule.get("to") or rule.get("from") or [{}]
        for peer in peers:
            if "ipBlock" in peer:
                label = peer["ipBlock"]["cidr"]
            elif "podSelector" in peer:
                label = ",".join(f"{k}={v}" for k, v in peer["podSelector"]["matchLabels"].items())
            else:
                label = "any"
            for port in rule["ports"]:
                found.add((label, port["port"], port["protocol"]))
    return found


def test_network_policy_allows_exactly_the_needed_traffic(
    gpu_stack: list[Registration],
) -> None:
    allow = only(gpu_stack, NETWORK_POLICY, "svc-allow-service")["spec"]
    assert _rules(allow["ingress"]) == {("any", contract.DEFAULT_PORT, "TCP")}
    assert _rules(allow["egress"]) == {
        ("k8s-app=kube-dns", 53, "UDP"),
        ("k8s-app=kube-dns", 53, "TCP"),
        ("0.0.0.0/0", 443, "TCP"),
        (POD_IDENTITY_AGENT_CIDR, 80, "TCP"),
    }
    https = next(r for r in allow["egress"] if r["ports"][0]["port"] == 443)
    assert https["to"][0]["ipBlock"]["except"] == ["169.254.169.254/32"]
    dns = next(r for r in allow["egress"] if r["ports"][0]["port"] == 53)
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }


def test_internal_nlb_service(gpu_stack: list[Registration]) -> None:
    service = only(gpu_stack, SERVICE)
    assert service["spec"]["type"] == "LoadBalancer"
    annotations = service["metadata"]["annotations"]
    # The AWS Load Balancer Controller serves it, not the in-tree controller: `external` is the
    # hand-off, `ip` targets pods directly, `internal` keeps it private.
    # https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/service/nlb/
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    # Deprecated in favour of the scheme annotation (same page, annotations table).
    assert "service.beta.kubernetes.io/aws-load-balancer-internal" not in annotations
    assert INTERNAL_NLB_ANNOTATIONS.items() <= annotations.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert port["targetPort"] == container(gpu_stack)["ports"][0]["name"]


def test_cluster_ip_service_has_no_load_balancer(cpu_stack: list[Registration]) -> None:
    service = only(cpu_stack, SERVICE)
    assert service["spec"]["type"] == "ClusterIP"
    assert "annotations" not in service["metadata"]


def test_expiry_annotation_on_every_object_of_an_ephemeral_stack() -> None:
    expires = "2026-11-28T21:00:00Z"
    resources = render(gpu_args(expires_at=expires))
    objects = [r for r in resources if r.type.startswith("kubernetes:")]
    assert objects
    for resource in objects:
        assert resource.inputs["metadata"]["annotations"][EXPIRY_ANNOTATION] == expires


def test_long_lived_stack_has_no_expiry(gpu_stack: list[Registration]) -> None:
    for resource in all_of(gpu_stack, DEPLOYMENT):
        assert EXPIRY_ANNOTATION not in (resource["metadata"].get("annotations") or {})


def test_outputs_name_the_service_and_its_url() -> None:
    seen: dict[str, str] = {}

    def program() -> None:
        workload = Workload("svc", gpu_args(service_port=8000))
        workload.in_cluster_url.apply(lambda url: seen.setdefault("url", url))
        workload.service_name.apply(lambda name: seen.setdefault("service", name))
        workload.load_balancer_hostname.apply(lambda host: seen.setdefault("nlb", host))

    resources = run_under_mocks(program)
    # The hostname the load balancer controller writes into the Service's status.
    ingress = one(resources, SERVICE).outputs["status"]["loadBalancer"]["ingress"]
    assert seen == {
        "url": "http://torch-inference.inference.svc.cluster.local:8000",
        "service": "torch-inference",
        "nlb": ingress[0]["hostname"],
    }
    assert seen["nlb"].endswith(f".elb.{REGION}.amazonaws.com")


def test_cluster_ip_service_has_no_load_balancer_hostname() -> None:
    seen: dict[str, str | None] = {}

    def program() -> None:
        workload = Workload("svc", gpu_args(exposure="cluster-ip"))
        workload.load_balancer_hostname.apply(lambda host: seen.setdefault("nlb", host))

    run_under_mocks(program)
    assert seen == {"nlb": None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
        ({"min_replicas": 0}, "min_replicas"),
        ({"namespace": "Inference"}, "namespace 'Inference'"),
        ({"app_name": "-svc"}, "app_name"),
        ({"target_cpu_utilization": 0}, "target_cpu_utilization"),
        ({"gpu_count": -1}, "gpu_count"),
        ({"exposure": "public-alb"}, "exposure"),
        ({"service_port": 70000}, "service_port"),
        ({"expires_at": "next tuesday"}, "expires_at"),
        ({"expires_at": "2026-11-28T21:00:00"}, "UTC offset"),
        ({"aws_region": ""}, "aws_region"),
    ],
)
def test_bad_args_fail_with_a_message_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        gpu_args(**changes)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"cpu_request": "half"}, "cpu_request"),
        ({"memory_limit": "4GB"}, "memory_limit"),
    ],
)
def test_bad_resource_quantities_are_refused(resources: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ContainerResources(**resources)
