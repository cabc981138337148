"""Autoscaling under the project's mocks: AMP + collector, KEDA's triggers, auth and IAM scope.

Sources the assertions encode:
- KEDA Prometheus scaler on AMP: https://keda.sh/docs/2.18/scalers/prometheus/ (example
  "Amazon Managed Service for Prometheus"), kedacore/keda pkg/scalers/prometheus_scaler.go (SigV4
  only without ``authModes``; ``authModes`` with pod identity is refused; ``/api/v1/query`` is
  appended to ``serverAddress``) and pkg/scalers/aws/aws_sigv4.go (signing service ``aps``).
- KEDA AWS pod identity: https://keda.sh/docs/latest/authentication-providers/aws/
  (``provider: aws``; the operator's role unless ``roleArn`` is given).
- AMP IAM actions: https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-and-IAM.html.
- KEDA chart per Kubernetes minor: KEDA's compatibility matrix
  (https://keda.sh/docs/latest/operate/cluster/: v2.17 tested on 1.30-1.32, v2.20 on 1.33-1.35);
  chart versions 2.17.2 and 2.20.2 as published (adfinis/helm-charts#1447, #2005 track them).
- AMP collector's Kubernetes identity (``aps-collector-user``, the role ARN without its path):
  https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-collector-how-to.html.
- The service's metrics: service/metrics.py (names), service/access_log.py (the /metrics request is
  itself in flight while it is scraped).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from infra.components.keda import (
    AMP_QUERY_ACTIONS,
    KEDA_CHART_BY_MINOR,
    KEDA_OPERATOR_SERVICE_ACCOUNT,
    keda_chart_version,
)
from infra.components.metrics_store import COLLECTOR_USER, role_arn_without_path
from infra.k8s.pod import HTTP_PORT_NAME
from infra.k8s.scaling import (
    SCALE_DOWN_PERIOD_SECONDS,
    SCALE_DOWN_PODS,
    TRIGGER_AUTH_NAME,
)
from infra.k8s.scrape_config import scrape_configuration
from service import contract
from service.metrics import ServiceMetrics
from tests.stack_inventory import LONG_LIVED, Inventory, policy
from tools.mocks import ACCOUNT_ID, MockRejectedError, ProgramMocks

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
WORKSPACE = "aws:amp/workspace:Workspace"
SCRAPER = "aws:amp/scraper:Scraper"
RETENTION = {"dev": 7, "staging": 30, "prod": 365}
#: (latency SLO, in-flight, request rate, queue p99 ms) per stack: what `make simulate` favours.
TARGETS = {
    "dev": (250, 64, 769, 125),
    "staging": (100, 28, 639, 50),
    "prod": (100, 28, 639, 50),
    "pr-123": (250, 64, 769, 125),
}


def outputs(inv: Inventory, type_: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [r for r in inv.of_type(type_) if name is None or r.name == name]
    return dict(found.outputs)


def triggers(inv: Inventory) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in inv.one(SCALED_OBJECT)["spec"]["triggers"]}


@pytest.fixture(params=[*LONG_LIVED, "pr-123"])
def stack(request: pytest.FixtureRequest, stack_run: Callable[[str], Inventory]) -> Inventory:
    return stack_run(request.param)


def workspace_of(inv: Inventory, stack_run: Callable[[str], Inventory]) -> dict[str, Any]:
    """The workspace a stack's KEDA triggers read: its own, or dev's for a pr stack."""
    owner = stack_run("dev") if inv.run.stack.startswith("pr-") else inv
    return outputs(owner, WORKSPACE)


# ------------------------------------------------------------------ triggers


def test_triggers_query_the_stacks_workspace_without_a_trailing_slash(
    stack: Inventory, stack_run: Callable[[str], Inventory]
) -> None:
    ws = workspace_of(stack, stack_run)
    assert ws["prometheusEndpoint"].endswith("/")  # what AMP reports
    for name in ("in-flight", "request-rate", "queue-time"):
        meta = triggers(stack)[name]["metadata"]
        assert meta["serverAddress"] == ws["prometheusEndpoint"].rstrip("/")
        assert not (meta["serverAddress"] + "/api/v1/query").count("//api")
        assert meta["awsRegion"] == "us-west-2"


def test_primary_trigger_is_in_flight_per_pod_without_the_scrape_itself(stack: Inventory) -> None:
    trigger = triggers(stack)["in-flight"]
    namespace = stack.one("kubernetes:apps/v1:Deployment")["metadata"]["namespace"]
    assert trigger["metricType"] == "AverageValue"  # the HPA divides the sum by the pod count
    assert trigger["metadata"]["threshold"] == str(TARGETS[stack.run.stack][1])
    assert trigger["metadata"]["activationThreshold"] == "0"
    assert trigger["metadata"]["query"] == (
        f'sum(clamp_min(inference_http_requests_in_flight{{namespace="{namespace}",'
        'app="inference"} - 1, 0))'
    )
    # The metric exists under that name in the service.
    assert "inference_http_requests_in_flight" in {
        m.name for m in ServiceMetrics().registry.collect()
    }


def test_request_rate_counts_inference_requests_only(stack: Inventory) -> None:
    trigger = triggers(stack)["request-rate"]
    assert trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["threshold"] == str(TARGETS[stack.run.stack][2])
    query = trigger["metadata"]["query"]
    assert query.startswith("sum(rate(inference_http_requests_total{")
    # Probes and the scrape are not load.
    for route in (contract.PATHS.METRICS, contract.PATHS.LIVE, contract.PATHS.READY):
        assert route in query.split('route!~"', 1)[1]
    # prometheus_client exposes the counter under that name.
    exposed = ServiceMetrics()
    exposed.requests.labels("/predict", "POST", "200").inc()
    assert any(
        s.name == "inference_http_requests_total"
        for m in exposed.registry.collect()
        for s in m.samples
    )


def test_queue_time_is_a_p99_in_ms_against_half_the_slo(stack: Inventory) -> None:
    trigger = triggers(stack)["queue-time"]
    slo, _, _, queue_ms = TARGETS[stack.run.stack]
    assert trigger["metricType"] == "Value"  # a latency is not divided by the pod count
    assert trigger["metadata"]["threshold"] == str(queue_ms)
    assert queue_ms * 2 == slo
    query = trigger["metadata"]["query"]
    assert query.startswith("1000 * histogram_quantile(0.99, sum by (le) (rate(")
    assert "inference_queue_duration_seconds_bucket{" in query
    assert "inference_queue_duration_seconds" in {
        m.name for m in ServiceMetrics().registry.collect()
    }


def test_cpu_is_a_floor_not_the_signal(stack: Inventory) -> None:
    names = list(triggers(stack))
    assert names[:4] == ["in-flight", "request-rate", "queue-time", "cpu-floor"]
    assert triggers(stack)["cpu-floor"] == {
        "type": "cpu",
        "name": "cpu-floor",
        "metricType": "Utilization",
        "metadata": {"value": "70"},
    }


def test_scaler_auth_is_pod_identity_and_never_auth_modes(stack: Inventory) -> None:
    auth = stack.one("kubernetes:keda.sh/v1alpha1:TriggerAuthentication")
    assert auth["metadata"]["name"] == TRIGGER_AUTH_NAME
    assert auth["spec"] == {"podIdentity": {"provider": "aws"}}
    for name in ("in-flight", "request-rate", "queue-time"):
        trigger = triggers(stack)[name]
        assert trigger["authenticationRef"] == {"name": TRIGGER_AUTH_NAME}
        # KEDA signs with SigV4 only when no authModes is set, and refuses authModes + identity.
        assert "authModes" not in trigger["metadata"]


def test_scale_up_is_fast_and_scale_down_slow_and_drain_safe(stack: Inventory) -> None:
    spec = stack.one(SCALED_OBJECT)["spec"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    (down,) = behavior["scaleDown"]["policies"]
    pdb = stack.one("kubernetes:policy/v1:PodDisruptionBudget")["spec"]
    pod = stack.one("kubernetes:apps/v1:Deployment")["spec"]["template"]["spec"]
    # Never more pods leave at once than the PDB lets go, nor faster than one drains.
    assert down == {"type": "Pods", "value": pdb["maxUnavailable"], "periodSeconds": 60}
    assert pdb["maxUnavailable"] == SCALE_DOWN_PODS
    assert pod["terminationGracePeriodSeconds"] < SCALE_DOWN_PERIOD_SECONDS
    assert (
        pod["terminationGracePeriodSeconds"] == contract.SHUTDOWN.termination_grace_period_seconds
    )


# ------------------------------------------------------------------ KEDA's identity


def test_keda_role_may_query_this_one_workspace_only(long_lived: Inventory) -> None:
    ws = outputs(long_lived, WORKSPACE)
    key = outputs(long_lived, "aws:kms/key:Key", "metrics-key")
    doc = policy(long_lived.one("aws:iam/rolePolicy:RolePolicy", "keda-query-policy"))
    query, decrypt = doc["Statement"]
    assert query["Action"] == list(AMP_QUERY_ACTIONS)
    assert query["Resource"] == ws["arn"]
    assert re.fullmatch(rf"arn:aws:aps:us-west-2:{ACCOUNT_ID}:workspace/ws-[0-9a-f-]+", ws["arn"])
    assert not any(a.startswith(("aps:RemoteWrite", "aps:Create", "aps:Delete")) for a in
                   query["Action"])  # fmt: skip
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == key["arn"]
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "aps.us-west-2.amazonaws.com"}
    }
    assert "*" not in json.dumps([query["Resource"], decrypt["Resource"]])


def test_keda_operator_gets_that_role_through_pod_identity(long_lived: Inventory) -> None:
    association = long_lived.one(
        "aws:eks/podIdentityAssociation:PodIdentityAssociation", "keda-operator"
    )
    role = outputs(long_lived, "aws:iam/role:Role", "keda-role")
    assert (association["namespace"], association["serviceAccount"]) == (
        "kube-system",
        KEDA_OPERATOR_SERVICE_ACCOUNT,
    )
    assert association["roleArn"] == role["arn"]
    trust = policy(long_lived.one("aws:iam/role:Role", "keda-role"), "assumeRolePolicy")
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(
        f"cluster/torch-eks-inference-{long_lived.run.stack}"
    )
    release = long_lived.one("kubernetes:helm.sh/v3:Release", "keda-release")
    assert release["namespace"] == "kube-system"
    version = long_lived.one("aws:eks/cluster:Cluster")["version"]
    assert release["version"] == KEDA_CHART_BY_MINOR[version]
    # The images are pinned to the chart's KEDA version too, never the chart's floating default.
    assert release["values"]["image"] == {
        component: {"tag": release["version"]}
        for component in ("keda", "metricsApiServer", "webhooks")
    }
    # Pod Identity, not IRSA: the chart must not annotate the ServiceAccount with a role.
    assert release["values"]["podIdentity"] == {"aws": {"irsa": {"enabled": False}}}


def test_keda_chart_is_pinned_for_every_supported_minor_within_its_tested_range() -> None:
    from infra.aws.eks_versions import CLUSTER_AUTOSCALER

    # Every minor the program pins add-ons for (infra/aws/eks_versions.py) has a KEDA pin too.
    for minor in CLUSTER_AUTOSCALER:
        assert keda_chart_version(minor)
    with pytest.raises(ValueError, match=r"no KEDA chart pinned for Kubernetes 1\.29"):
        keda_chart_version("1.29")


# ------------------------------------------------------------------ AMP and its collector


def test_workspace_is_encrypted_with_a_rotating_key_and_keeps_the_stacks_retention(
    long_lived: Inventory,
) -> None:
    key = long_lived.one("aws:kms/key:Key", "metrics-key")
    assert key["enableKeyRotation"] is True
    workspace = long_lived.one(WORKSPACE)
    assert workspace["kmsKeyArn"] == outputs(long_lived, "aws:kms/key:Key", "metrics-key")["arn"]
    retention = long_lived.one("aws:amp/workspaceConfiguration:WorkspaceConfiguration")
    assert retention["retentionPeriodInDays"] == RETENTION[long_lived.run.stack]
    (workspace_registration,) = long_lived.of_type(WORKSPACE)
    assert retention["workspaceId"] == workspace_registration.id
    key_policy = policy(key)
    via = [s for s in key_policy["Statement"] if s.get("Sid") == "AmpUseThroughTheService"]
    assert via[0]["Condition"]["StringEquals"]["kms:ViaService"] == "aps.us-west-2.amazonaws.com"


def test_prod_workspace_and_key_are_protected(stack_run: Callable[[str], Inventory]) -> None:
    prod = {r.name: r for r in stack_run("prod").registrations}
    assert prod["metrics-workspace"].protect
    assert prod["metrics-key"].protect
    dev = {r.name: r for r in stack_run("dev").registrations}
    assert not dev["metrics-workspace"].protect


def test_collector_scrapes_the_cluster_from_its_private_subnets(long_lived: Inventory) -> None:
    scraper = long_lived.one(SCRAPER)
    subnets = [r.id for r in long_lived.of_type("aws:ec2/subnet:Subnet") if "private" in r.name]
    eks = scraper["source"]["eks"]
    assert sorted(eks["subnetIds"]) == sorted(subnets)
    assert len(eks["subnetIds"]) >= 2
    assert eks["clusterArn"] == outputs(long_lived, "aws:eks/cluster:Cluster")["arn"]
    assert scraper["destination"]["amp"]["workspaceArn"] == outputs(long_lived, WORKSPACE)["arn"]
    sg = outputs(long_lived, "aws:eks/cluster:Cluster")["vpcConfig"]["clusterSecurityGroupId"]
    assert eks["securityGroupIds"] == [sg]


def test_collector_is_mapped_to_its_kubernetes_user_without_the_role_path(
    long_lived: Inventory,
) -> None:
    role = outputs(long_lived, SCRAPER)["roleArn"]
    assert "/aws-service-role/" in role  # what DescribeScraper reports
    entry = long_lived.one("aws:eks/accessEntry:AccessEntry", "metrics-collector-access")
    assert entry["principalArn"] == role_arn_without_path(role)
    assert re.fullmatch(
        rf"arn:aws:iam::{ACCOUNT_ID}:role/AWSServiceRoleForAmazonPrometheusScraper_\w+",
        entry["principalArn"],
    )
    assert entry["userName"] == COLLECTOR_USER
    binding = long_lived.one(
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "metrics-collector-binding"
    )
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COLLECTOR_USER}
    ]
    role_rules = long_lived.one(
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "metrics-collector-role"
    )["rules"]
    assert all(set(r.get("verbs", [])) <= {"get", "list", "watch"} for r in role_rules)


def test_scrape_config_finds_the_pods_the_workload_declares(stack: Inventory) -> None:
    document = yaml.safe_load(scrape_configuration())
    jobs = {job["job_name"]: job for job in document["scrape_configs"]}
    inference = jobs["inference"]
    assert inference["metrics_path"] == contract.PATHS.METRICS
    keep = {tuple(r["source_labels"]): r["regex"] for r in inference["relabel_configs"]
            if r.get("action") == "keep"}  # fmt: skip
    pod = stack.one("kubernetes:apps/v1:Deployment")["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert keep[("__meta_kubernetes_pod_label_app_kubernetes_io_component",)] == labels[
        "app.kubernetes.io/component"]  # fmt: skip
    ports = pod["spec"]["containers"][0]["ports"]
    assert keep[("__meta_kubernetes_pod_container_port_name",)] == HTTP_PORT_NAME
    assert {p["name"] for p in ports} == {HTTP_PORT_NAME}
    # The app label the KEDA queries select on comes from the pod's app.kubernetes.io/name.
    app = [r for r in inference["relabel_configs"] if r.get("target_label") == "app"]
    assert labels["app.kubernetes.io/name"] == "inference"
    assert app[0]["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    assert jobs["dcgm-exporter"]["kubernetes_sd_configs"][0]["namespaces"] == {
        "names": ["amazon-cloudwatch"]
    }


# ------------------------------------------------------------------ the mocks refuse what AMP does


def _scraper_inputs(**changes: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "scrapeConfiguration": scrape_configuration(),
        "source": {
            "eks": {
                "clusterArn": f"arn:aws:eks:us-west-2:{ACCOUNT_ID}:cluster/c",
                "subnetIds": ["subnet-1", "subnet-2"],
            }
        },
        "destination": {
            "amp": {"workspaceArn": f"arn:aws:aps:us-west-2:{ACCOUNT_ID}:workspace/ws-1"}
        },
    }
    inputs.update(changes)
    return inputs


def test_mock_scraper_refuses_one_subnet_and_a_config_without_jobs() -> None:
    mocks = ProgramMocks()
    assert mocks.outputs(SCRAPER, "s", _scraper_inputs(), None)["roleArn"]
    one = _scraper_inputs()
    one["source"]["eks"]["subnetIds"] = ["subnet-1"]
    with pytest.raises(MockRejectedError, match="2\\+ subnets"):
        mocks.outputs(SCRAPER, "s", one, None)
    with pytest.raises(MockRejectedError, match="no scrape_configs"):
        mocks.outputs(SCRAPER, "s", _scraper_inputs(scrapeConfiguration="global: {}\n"), None)
    with pytest.raises(MockRejectedError, match="1-1095"):
        mocks.outputs(
            "aws:amp/workspaceConfiguration:WorkspaceConfiguration",
            "r",
            {"workspaceId": "ws-1", "retentionPeriodInDays": 3650},
            None,
        )
