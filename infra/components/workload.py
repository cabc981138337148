"""The inference service on Kubernetes: namespace, identity, Deployment, Service, scaling.

``Workload`` declares every Kubernetes object the service needs in its own namespace. Ports,
paths, environment names, UIDs and timings come from ``service.contract`` (through
``infra.k8s.pod``), so the manifests cannot drift from what the image actually does.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.components.types import component_options, type_token
from infra.config import ROLLOUT_MAX_SURGE
from infra.k8s.network_policies import (
    SERVICE_EXPOSURES,
    ServiceExposure,
    allow_service_spec,
    default_deny_spec,
    service_annotations,
    service_spec,
)
from infra.k8s.pod import (
    ContainerResources,
    PodTemplateInputs,
    ServiceSettings,
    pod_template,
    require_digest_reference,
    require_dns_label,
)
from infra.k8s.scaling import (
    TRIGGER_AUTH_NAME,
    ScalingSpec,
    scaled_object_spec,
    trigger_authentication_spec,
)

#: Annotation put on every object of an ephemeral stack; people and sweepers read it.
EXPIRY_ANNOTATION = "torch-eks-inference/expires-at"
#: Lets KEDA adopt the HPA an earlier version of this program declared for the Deployment.
TRANSFER_HPA_OWNERSHIP = "scaledobject.keda.sh/transfer-hpa-ownership"
#: Pod Security Admission level enforced (and audited, and warned about) in the namespace.
POD_SECURITY_LEVEL = "restricted"


@dataclass(frozen=True)
class WorkloadArgs:
    """Inputs of :class:`Workload`; validated on construction, every error names the field."""

    namespace: str
    app_name: str
    #: ``<repository>@sha256:<digest>``; a plain string is checked now, an Output when it resolves.
    image: pulumi.Input[str]
    aws_region: str
    #: The Kubernetes ServiceAccount the pods run as; an EKS Pod Identity association made by the
    #: secrets component binds this (namespace, name) pair to the role that may read the API key.
    service_account_name: str
    #: AMP workspace query URL (https, no trailing ``/``): where KEDA reads the service's metrics.
    metrics_query_url: pulumi.Input[str]
    min_replicas: int = 1
    max_replicas: int = 3
    target_cpu_utilization: int = 70
    scale_down_stabilization_seconds: int = 300
    #: Per-pod targets of the KEDA triggers (``scalingTargetInFlight``, ``scalingTargetQueueMs``).
    target_in_flight: int = 28
    target_request_rate: int = 639
    target_queue_ms: int = 50
    #: Cron window (start, end, timezone) outside which the Deployment may scale to zero.
    working_hours: tuple[str, str, str] | None = None
    #: GPUs per pod; 0 for a CPU-only stack (no GPU limit, no toleration).
    gpu_count: int = 0
    #: Node labels the pods must land on (the GPU node group's labels on GPU stacks).
    node_selector: Mapping[str, str] = field(default_factory=dict)
    resources: ContainerResources = field(default_factory=ContainerResources)
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    exposure: ServiceExposure = "cluster-ip"
    service_port: int = 80
    #: ARN of the Secrets Manager secret holding the API key; ``None`` serves without a key.
    secret_arn: pulumi.Input[str] | None = None
    #: Extra labels for every object (e.g. the stack name); app.kubernetes.io/* are set here.
    labels: Mapping[str, str] = field(default_factory=dict)
    #: ISO-8601 UTC time after which an ephemeral stack may be destroyed; ``None`` for long-lived.
    expires_at: str | None = None

    def __post_init__(self) -> None:
        require_dns_label("namespace", self.namespace)
        require_dns_label("app_name", self.app_name)
        require_dns_label("service_account_name", self.service_account_name)
        if isinstance(self.image, str):
            require_digest_reference(self.image)
        if not self.aws_region:
            raise ValueError("aws_region must not be empty")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"replicas: need 1 <= min_replicas ({self.min_replicas}) <= "
                f"max_replicas ({self.max_replicas})"
            )
        if not 1 <= self.target_cpu_utilization <= 100:
            raise ValueError(
                f"target_cpu_utilization {self.target_cpu_utilization} must be 1-100 (percent)"
            )
        if not 0 <= self.scale_down_stabilization_seconds <= 3600:
            raise ValueError(
                f"scale_down_stabilization_seconds {self.scale_down_stabilization_seconds} "
                "must be 0-3600 (the Kubernetes limit)"
            )
        if not 0 <= self.gpu_count <= 8:
            raise ValueError(f"gpu_count {self.gpu_count} must be 0-8 (GPUs per pod)")
        if self.exposure not in SERVICE_EXPOSURES:
            raise ValueError(f"exposure {self.exposure!r} is not one of {SERVICE_EXPOSURES}")
        if not 1 <= self.service_port <= 65535:
            raise ValueError(f"service_port {self.service_port} must be 1-65535")
        if self.expires_at is not None:
            try:
                parsed = datetime.fromisoformat(self.expires_at)
            except ValueError as exc:
                raise ValueError(
                    f"expires_at {self.expires_at!r} is not an ISO-8601 time ({exc})"
                ) from None
            if parsed.tzinfo is None:
                raise ValueError(f"expires_at {self.expires_at!r} needs a UTC offset, e.g. 'Z'")


class Workload(pulumi.ComponentResource):
    """The inference service in its own namespace, hardened and autoscaled.

    Children: Namespace (pod security ``restricted``), ServiceAccount, Deployment, Service, a KEDA
    ScaledObject and TriggerAuthentication (KEDA creates the HPA from them; see
    ``infra.k8s.scaling``), PodDisruptionBudget and two NetworkPolicies (deny
    everything, then allow the service port, DNS, HTTPS and the Pod Identity agent). Pass the
    cluster's Kubernetes provider in ``opts`` (``providers=[...]`` or ``provider=``).
    """

    namespace: pulumi.Output[str]
    service_name: pulumi.Output[str]
    deployment_name: pulumi.Output[str]
    service_account_name: pulumi.Output[str]
    in_cluster_url: pulumi.Output[str]
    #: DNS name of the internal NLB (``None`` for a ClusterIP Service).
    load_balancer_hostname: pulumi.Output[str | None]

    def __init__(
        self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("workload", "Workload")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        self._selector = {
            "app.kubernetes.io/name": args.app_name,
            "app.kubernetes.io/instance": args.namespace,
        }
        self._labels = {
            **args.labels,
            **self._selector,
            "app.kubernetes.io/component": "inference",
            "app.kubernetes.io/managed-by": "pulumi",
        }
        self._annotations = {EXPIRY_ANNOTATION: args.expires_at} if args.expires_at else {}
        self._ns = self._namespace()
        sa = self._service_account()
        deployment = self._deployment(sa)
        service = self._service()
        self._scaled_object(deployment)
        self._disruption_budget()
        self._network_policies()
        self._outputs(sa, deployment, service)

    def _meta(
        self, name: str, extra: Mapping[str, str] | None = None
    ) -> k8s.meta.v1.ObjectMetaArgs:
        """Metadata of a namespaced child: the workload's labels and annotations."""
        return k8s.meta.v1.ObjectMetaArgs(
            name=name,
            namespace=self._ns.metadata.name,
            labels=self._labels,
            annotations={**self._annotations, **(extra or {})} or None,
        )

    def _namespace(self) -> k8s.core.v1.Namespace:
        """The namespace, enforcing (and auditing, warning about) pod security ``restricted``."""
        ns_labels = {
            f"pod-security.kubernetes.io/{mode}": POD_SECURITY_LEVEL
            for mode in ("enforce", "audit", "warn")
        }
        return k8s.core.v1.Namespace(
            f"{self._name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=self._args.namespace,
                labels={**self._labels, **ns_labels},
                annotations=self._annotations or None,
            ),
            opts=self._child,
        )

    def _service_account(self) -> k8s.core.v1.ServiceAccount:
        return k8s.core.v1.ServiceAccount(
            f"{self._name}-service-account",
            metadata=self._meta(self._args.service_account_name),
            # Pods opt out too; the token is only for talking to the Kubernetes API.
            automount_service_account_token=False,
            opts=self._child,
        )

    def _pod_template(self, sa: k8s.core.v1.ServiceAccount) -> k8s.core.v1.PodTemplateSpecArgs:
        args = self._args
        return pod_template(
            PodTemplateInputs(
                container_name=args.app_name,
                image=pulumi.Output.from_input(args.image).apply(require_digest_reference),
                service_account_name=sa.metadata.name,
                labels=self._labels,
                selector=self._selector,
                annotations=self._annotations,
                gpu_count=args.gpu_count,
                node_selector=args.node_selector,
                resources=args.resources,
                settings=args.settings,
                aws_region=args.aws_region,
                secret_arn=args.secret_arn,
            )
        )

    def _deployment(self, sa: k8s.core.v1.ServiceAccount) -> k8s.apps.v1.Deployment:
        return k8s.apps.v1.Deployment(
            f"{self._name}-deployment",
            metadata=self._meta(self._args.app_name),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # No `replicas`: KEDA's HPA owns the count, and a value here would reset it on
                # every `pulumi up`. The API server starts at 1; the HPA lifts it to min at once.
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._selector),
                revision_history_limit=5,
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    # Never drop below the serving count during a rollout; GPUs are scarce, so
                    # surge one pod at a time.
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_unavailable=0, max_surge=ROLLOUT_MAX_SURGE
                    ),
                ),
                template=self._pod_template(sa),
            ),
            # A GPU rollout may wait for a node to scale up from zero and pull a CUDA image.
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m"),
            ),
        )

    def _service(self) -> k8s.core.v1.Service:
        args = self._args
        return k8s.core.v1.Service(
            f"{self._name}-service",
            metadata=self._meta(args.app_name, extra=service_annotations(args.exposure)),
            spec=service_spec(args.exposure, self._selector, args.service_port),
            opts=self._child,
        )

    def _scaled_object(self, deployment: k8s.apps.v1.Deployment) -> None:
        """KEDA's TriggerAuthentication and ScaledObject (which replace a CPU-only HPA)."""
        args = self._args
        auth = k8s.apiextensions.CustomResource(
            f"{self._name}-keda-auth",
            api_version="keda.sh/v1alpha1",
            kind="TriggerAuthentication",
            metadata=self._meta(TRIGGER_AUTH_NAME),
            spec=trigger_authentication_spec(),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        k8s.apiextensions.CustomResource(
            f"{self._name}-scaled-object",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            # A stack deployed before KEDA has an HPA of this name for the same Deployment; KEDA's
            # webhook refuses a ScaledObject next to it unless it takes the HPA over
            # (https://keda.sh/docs/2.14/concepts/scaling-deployments/#scaledobject-spec). The
            # HPA name in the spec is that same name, so the take-over is what an update does.
            metadata=self._meta(args.app_name, extra={TRANSFER_HPA_OWNERSHIP: "true"}),
            spec=pulumi.Output.from_input(args.metrics_query_url).apply(
                functools.partial(_scaled_object_spec, args)
            ),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[auth, deployment], delete_before_replace=True
            ),
        )

    def _disruption_budget(self) -> None:
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-pdb",
            metadata=self._meta(self._args.app_name),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                # One pod at a time: keeps n-1 serving during drains, and with a single replica
                # it still lets node upgrades proceed (minAvailable 1 would block them forever).
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._selector),
                # A crash-looping pod must never block a drain.
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
            opts=self._child,
        )

    def _network_policies(self) -> None:
        """Deny everything, then allow the service port, DNS, HTTPS and the Pod Identity agent."""
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-default-deny",
            metadata=self._meta("default-deny-all"),
            spec=default_deny_spec(),
            opts=self._child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-allow-service",
            metadata=self._meta(f"{self._args.app_name}-allow"),
            spec=allow_service_spec(self._selector),
            opts=self._child,
        )

    def _outputs(
        self,
        sa: k8s.core.v1.ServiceAccount,
        deployment: k8s.apps.v1.Deployment,
        service: k8s.core.v1.Service,
    ) -> None:
        self.namespace = self._ns.metadata.name
        self.service_name = service.metadata.name
        self.deployment_name = deployment.metadata.name
        self.service_account_name = sa.metadata.name
        port = self._args.service_port
        self.in_cluster_url = pulumi.Output.concat(
            "http://",
            service.metadata.name,
            ".",
            self._ns.metadata.name,
            ".svc.cluster.local",
            "" if port == 80 else f":{port}",
        )
        self.load_balancer_hostname = service.status.apply(_load_balancer_hostname)
        self.register_outputs(
            {
                "load_balancer_hostname": self.load_balancer_hostname,
                "namespace": self.namespace,
                "service_name": self.service_name,
                "deployment_name": self.deployment_name,
                "service_account_name": self.service_account_name,
                "in_cluster_url": self.in_cluster_url,
            }
        )


def _scaled_object_spec(args: WorkloadArgs, query_url: str) -> dict[str, Any]:
    """The ScaledObject spec for the workload, once the metrics query URL is known."""
    return scaled_object_spec(
        ScalingSpec(
            namespace=args.namespace,
            app_name=args.app_name,
            deployment_name=args.app_name,
            query_url=query_url,
            aws_region=args.aws_region,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            target_in_flight=args.target_in_flight,
            target_request_rate=args.target_request_rate,
            target_queue_ms=args.target_queue_ms,
            target_cpu_utilization=args.target_cpu_utilization,
            scale_down_stabilization_seconds=args.scale_down_stabilization_seconds,
            working_hours=args.working_hours,
        )
    )


def _load_balancer_hostname(status: k8s.core.v1.outputs.ServiceStatus | None) -> str | None:
    """The first load-balancer ingress hostname the cloud controller wrote into the status."""
    if status is None or status.load_balancer is None or not status.load_balancer.ingress:
        return None
    return status.load_balancer.ingress[0].hostname
