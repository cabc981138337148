"""What the AWS managed Prometheus collector scrapes: the service's /metrics and GPU metrics.

The collector takes a Prometheus scrape configuration (YAML, sent base64-encoded by the
provider). Two jobs:

- ``inference``: every pod labelled ``app.kubernetes.io/component=inference`` (any namespace, so
  the pr-<n> stacks on the dev cluster are scraped too), on its container port named ``http``,
  path ``/metrics`` (``service.contract``). Each series keeps ``namespace``, ``pod`` and ``app``
  labels: the KEDA queries select on ``namespace`` and ``app``.
- ``dcgm-exporter``: the NVIDIA DCGM exporter the amazon-cloudwatch-observability add-on runs on
  GPU nodes (pods ``k8s-app=dcgm-exporter`` in ``amazon-cloudwatch``, port 9400). The add-on
  serves it over TLS with a certificate from its own in-cluster CA (secret
  ``amazon-cloudwatch-observability-agent-cert``, see aws-observability/helm-charts
  charts/amazon-cloudwatch-observability/templates/linux/dcgm-exporter-daemonset.yaml), which a
  managed collector cannot mount, so this job skips certificate verification. The traffic stays
  inside the VPC and the exporter serves metrics only.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from infra.k8s.pod import HTTP_PORT_NAME
from service import contract

#: Label every inference pod carries (``infra.components.workload``), whatever its stack.
INFERENCE_COMPONENT_LABEL: Final = ("app.kubernetes.io/component", "inference")
#: Where the CloudWatch observability add-on runs its DCGM exporter, and how its pods are labelled.
DCGM_NAMESPACE: Final = "amazon-cloudwatch"
DCGM_POD_LABEL: Final = ("k8s-app", "dcgm-exporter")
DCGM_PORT: Final = 9400
SCRAPE_INTERVAL: Final = "15s"


def _label(name: str) -> str:
    """The meta label Kubernetes service discovery gives a pod label (``app.kubernetes.io/x``)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in name)


def _common_relabels() -> list[dict[str, Any]]:
    return [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
    ]


def _inference_job() -> dict[str, Any]:
    key, value = INFERENCE_COMPONENT_LABEL
    return {
        "job_name": "inference",
        "metrics_path": contract.PATHS.METRICS,
        "kubernetes_sd_configs": [{"role": "pod"}],
        "relabel_configs": [
            {"source_labels": [_label(key)], "regex": value, "action": "keep"},
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": HTTP_PORT_NAME,
                "action": "keep",
            },
            *_common_relabels(),
            {"source_labels": [_label("app.kubernetes.io/name")], "target_label": "app"},
        ],
    }


def _dcgm_job() -> dict[str, Any]:
    key, value = DCGM_POD_LABEL
    return {
        "job_name": "dcgm-exporter",
        "scheme": "https",
        "tls_config": {"insecure_skip_verify": True},
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [DCGM_NAMESPACE]}}],
        "relabel_configs": [
            {"source_labels": [_label(key)], "regex": value, "action": "keep"},
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                "regex": str(DCGM_PORT),
                "action": "keep",
            },
            *_common_relabels(),
        ],
    }


def scrape_configuration() -> str:
    """The collector's scrape configuration as YAML text."""
    document = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "10s"},
        "scrape_configs": [_inference_job(), _dcgm_job()],
    }
    return yaml.safe_dump(document, sort_keys=False)
