"""The Pulumi program: composes the components of infra/ for the selected stack.

Long-lived stacks (dev, staging, prod): config -> network -> cluster (+ Container Insights log
groups) -> add-ons -> registry -> API key secret -> Kubernetes provider -> workload (the image
CI built once, by digest, from config ``imageRef``) -> monitoring. Ephemeral ``pr-<n>`` stacks
borrow the cluster and registry of ``clusterStack`` through a StackReference and own only their
image (built from the PR's code), secret, namespace and workload.

The Pulumi CLI runs this file with infra/ first on ``sys.path``; every import below is absolute
(``infra.*``, ``service.contract``) and resolves through the editable install of the repository
(``pip install -e .``), and no module directly under infra/ is named like a standard-library or
installed top-level module (tests/test_architecture.py), so that first entry shadows nothing.
"""

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import config as stack_config
from infra.components.addons import Addons, AddonsArgs, BeforeCompute
from infra.components.api_key_secret import ApiKeySecret, ApiKeySecretArgs
from infra.components.cluster import (
    GPU_NODE_LABELS,
    SYSTEM_NODE_LABELS,
    Cluster,
    ClusterArgs,
)
from infra.components.cluster_rbac import WorkloadDeployerRbac
from infra.components.image_registry import (
    Registry,
    RegistryArgs,
    ServiceImage,
    ServiceImageArgs,
    digest_of,
    source_hash,
)
from infra.components.karpenter import Karpenter, KarpenterArgs
from infra.components.keda import Keda, KedaArgs
from infra.components.metrics_store import ManagedPrometheus, ManagedPrometheusArgs
from infra.components.observability import (
    ContainerInsightsLogs,
    ContainerInsightsLogsArgs,
    ServiceMonitoring,
    ServiceMonitoringArgs,
)
from infra.components.vpc import Vpc, VpcArgs
from infra.components.workload import Workload, WorkloadArgs
from infra.config import Environment, ImageVariant, StackConfig, gpus_of
from infra.scaling_config import NodeProvisioner, ScaleToZero
from service import contract

#: Name of the Deployment, Service and container of the inference service.
APP_NAME = "inference"
#: Port of the Kubernetes Service in front of the pods (they listen on the contract's port).
SERVICE_PORT = 80


def _image_tag(cfg: StackConfig) -> str:
    tag = cfg.image_tag or f"{cfg.image_variant.value}-{source_hash(cfg.image_variant)}"
    # pr-* tags start with the stack name so the registry's lifecycle policy expires them early.
    return f"{cfg.stack}-{tag}" if cfg.is_ephemeral else tag


def _workload(
    cfg: StackConfig,
    image_digest: pulumi.Input[str],
    secret: ApiKeySecret,
    provider: k8s.Provider,
    depends_on: list[pulumi.Resource],
    metrics_query_url: pulumi.Input[str],
) -> Workload:
    gpu = cfg.image_variant is ImageVariant.CUDA
    scaling = cfg.scaling
    working_hours = (
        (scaling.working_hours_start, scaling.working_hours_end, scaling.working_hours_timezone)
        if scaling.scale_to_zero is ScaleToZero.OFF_HOURS
        else None
    )
    return Workload(
        "service",
        WorkloadArgs(
            namespace=cfg.namespace,
            app_name=APP_NAME,
            image=image_digest,
            aws_region=cfg.region,
            service_account_name=cfg.service_account,
            min_replicas=cfg.hpa_min_replicas,
            max_replicas=cfg.hpa_max_replicas,
            target_cpu_utilization=cfg.hpa_target_cpu_utilization,
            metrics_query_url=metrics_query_url,
            target_in_flight=scaling.target_in_flight,
            target_request_rate=scaling.target_request_rate,
            target_queue_ms=scaling.target_queue_ms,
            scale_down_stabilization_seconds=scaling.scale_down_stabilization_seconds,
            working_hours=working_hours,
            gpu_count=1 if gpu else 0,
            node_selector=dict(GPU_NODE_LABELS if gpu else SYSTEM_NODE_LABELS),
            exposure=cfg.service_type.value,
            service_port=SERVICE_PORT,
            secret_arn=secret.secret_arn,
            labels={"torch-eks-inference/stack": cfg.stack},
            expires_at=cfg.expires_at_iso,
        ),
        opts=pulumi.ResourceOptions(providers=[provider], depends_on=depends_on),
    )


def _port_forward(workload: Workload) -> pulumi.Output[str]:
    """How to reach the service from a workstation (kubeconfig from the stack output)."""
    return pulumi.Output.concat(
        "kubectl -n ",
        workload.namespace,
        " port-forward svc/",
        workload.service_name,
        f" {contract.DEFAULT_PORT}:{SERVICE_PORT}",
    )


def _secret(
    cfg: StackConfig, cluster_name: pulumi.Input[str], cluster_arn: pulumi.Input[str]
) -> ApiKeySecret:
    return ApiKeySecret(
        "api-key",
        ApiKeySecretArgs(
            secret_name=f"{cfg.project}/{cfg.stack}/api-key",
            api_key=cfg.api_key,
            cluster_name=cluster_name,
            cluster_arn=cluster_arn,
            namespace=cfg.namespace,
            service_account=cfg.service_account,
            recovery_window_days=cfg.secret_recovery_days,
            deletion_protection=cfg.deletion_protection,
            tags=cfg.resource_tags,
        ),
    )


def _delivery_registry(cfg: StackConfig) -> Registry:
    """The ECR repository CI pushes every commit's image to, once; pr stacks push theirs too.

    It keeps its images when dev is destroyed (no force-delete): staging and prod run them.
    """
    return Registry(
        "registry",
        RegistryArgs(
            repository_name=f"{cfg.project}/{cfg.stack}",
            ephemeral=False,
            deletion_protection=cfg.deletion_protection,
            tags=cfg.resource_tags,
            replicas=cfg.image_replicas,
            holds_deployed_images=True,
        ),
    )


def _cluster_security_groups(cluster: Cluster) -> pulumi.Output[list[str]]:
    return cluster.eks_cluster.vpc_config.apply(
        lambda vpc: [vpc.cluster_security_group_id] if vpc.cluster_security_group_id else []
    )


def _autoscaling(
    cfg: StackConfig,
    network: Vpc,
    cluster: Cluster,
    provider: k8s.Provider,
    addons: Addons,
) -> tuple[ManagedPrometheus, list[pulumi.Resource]]:
    """AMP + managed collector, KEDA reading it, and Karpenter when the stack chooses it."""
    metrics = ManagedPrometheus(
        "metrics",
        ManagedPrometheusArgs(
            cluster_name=cfg.cluster_name,
            cluster_arn=cluster.arn,
            subnet_ids=network.private_subnet_ids,
            security_group_ids=_cluster_security_groups(cluster),
            log_retention_days=cfg.log_retention_days,
            deletion_protection=cfg.deletion_protection,
            k8s_provider=provider,
            tags=cfg.resource_tags,
        ),
        opts=pulumi.ResourceOptions(depends_on=[cluster]),
    )
    keda = Keda(
        "keda",
        KedaArgs(
            cluster_name=cfg.cluster_name,
            cluster=cluster.eks_cluster,
            kubernetes_version=cfg.kubernetes_version,
            k8s_provider=provider,
            workspace_arn=metrics.workspace_arn,
            workspace_key_arn=metrics.kms_key_arn,
            tags=cfg.resource_tags,
            depends_on=[addons],
        ),
    )
    added: list[pulumi.Resource] = [keda]
    if cfg.scaling.node_provisioner is NodeProvisioner.KARPENTER:
        added.append(_karpenter(cfg, network, cluster, provider, addons))
    return metrics, added


def _karpenter(
    cfg: StackConfig, network: Vpc, cluster: Cluster, provider: k8s.Provider, addons: Addons
) -> Karpenter:
    """Karpenter owning the GPU nodes, capped at the GPUs ``gpuNodeMax`` nodes would have."""
    smallest = min(gpus_of(t) for t in cfg.gpu_instance_types)
    return Karpenter(
        "karpenter",
        KarpenterArgs(
            cluster_name=cfg.cluster_name,
            cluster=cluster.eks_cluster,
            kubernetes_version=cfg.kubernetes_version,
            k8s_provider=provider,
            private_subnet_ids=network.private_subnet_ids,
            cluster_security_group_id=_cluster_security_groups(cluster).apply(lambda ids: ids[0]),
            volume_key_arn=cluster.secrets_key_arn,
            gpu_instance_types=cfg.gpu_instance_types,
            capacity=cfg.gpu_capacity_type,
            gpu_limit=cfg.gpu_nodes.max_size * smallest,
            root_volume_gib=cfg.gpu_root_volume_gib,
            consolidate_after_seconds=cfg.scaling.scale_down_stabilization_seconds,
            tags=cfg.resource_tags,
            depends_on=[addons],
        ),
    )


def _network(cfg: StackConfig) -> Vpc:
    """The stack's own VPC, or the existing one it names."""
    return Vpc(
        "network",
        VpcArgs(
            cluster_name=cfg.cluster_name,
            vpc_cidr=cfg.vpc_cidr,
            az_count=cfg.az_count,
            nat_policy=cfg.nat_policy,
            tags=cfg.resource_tags,
            existing_vpc_id=cfg.existing_vpc_id,
            existing_private_subnet_ids=cfg.existing_private_subnet_ids,
            existing_public_subnet_ids=cfg.existing_public_subnet_ids,
        ),
    )


def _cluster(cfg: StackConfig, network: Vpc, before_compute: BeforeCompute) -> Cluster:
    return Cluster(
        "cluster",
        ClusterArgs(
            cluster_name=cfg.cluster_name,
            kubernetes_version=cfg.kubernetes_version,
            private_subnet_ids=network.private_subnet_ids,
            public_access_cidrs=cfg.public_access_cidrs,
            gpu_instance_types=cfg.gpu_instance_types,
            gpu_capacity_type=cfg.gpu_capacity_type,
            gpu_scaling=cfg.gpu_nodes,
            gpu_root_volume_gib=cfg.gpu_root_volume_gib,
            system_instance_type=cfg.system_instance_type,
            system_scaling=cfg.system_nodes,
            log_retention_days=cfg.log_retention_days,
            deletion_protection=cfg.deletion_protection,
            tags=cfg.resource_tags,
            upgrade_support_type=cfg.upgrade_support_type,
            admin_role_arns=cfg.admin_role_arns,
            deploy_role_arns=cfg.deploy_role_arns,
            preview_role_arns=cfg.preview_role_arns,
            ephemeral_role_arns=cfg.ephemeral_role_arns,
            before_compute=before_compute,
            managed_gpu_node_group=cfg.scaling.node_provisioner
            is NodeProvisioner.CLUSTER_AUTOSCALER,
        ),
    )


def _container_insights(cfg: StackConfig, cluster: Cluster) -> ContainerInsightsLogs:
    return ContainerInsightsLogs(
        "container-insights",
        ContainerInsightsLogsArgs(
            cluster_name=cluster.name,
            account_id=aws.get_caller_identity_output().account_id,
            region=cfg.region,
            retention_days=cfg.log_retention_days,
            partition=cfg.partition,
            key_deletion_window_days=30 if cfg.deletion_protection else 7,
            tags=cfg.resource_tags,
        ),
    )


def _addons(
    cfg: StackConfig,
    network: Vpc,
    cluster: Cluster,
    before_compute: BeforeCompute,
    logs: ContainerInsightsLogs,
) -> tuple[k8s.Provider, Addons]:
    """The cluster's Kubernetes provider, the deployers' RBAC and the add-ons."""
    # Every Kubernetes call waits for the access entries: without one, EKS answers 401.
    provider = k8s.Provider(
        "k8s",
        kubeconfig=cluster.kubeconfig,
        opts=pulumi.ResourceOptions(depends_on=[cluster, *cluster.access_resources]),
    )
    WorkloadDeployerRbac("workload-deployers", opts=pulumi.ResourceOptions(provider=provider))
    addons = Addons(
        "addons",
        AddonsArgs(
            cluster_name=cfg.cluster_name,
            cluster=cluster.eks_cluster,
            kubernetes_version=cfg.kubernetes_version,
            system_node_group=cluster.system_node_group,
            k8s_provider=provider,
            tags=cfg.resource_tags,
            before_compute=before_compute.component,
            vpc_id=network.vpc_id,
            log_groups=[logs],
        ),
    )
    return provider, addons


def _export_platform(
    cfg: StackConfig,
    network: Vpc,
    cluster: Cluster,
    metrics: ManagedPrometheus,
    logs: ContainerInsightsLogs,
) -> None:
    """The outputs of a long-lived stack's platform; pr-* stacks read several of them."""
    pulumi.export("environment", cfg.environment.value)
    pulumi.export("region", cfg.region)
    pulumi.export("clusterName", cluster.name)
    pulumi.export("clusterArn", cluster.arn)
    pulumi.export("clusterEndpoint", cluster.endpoint)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("vpcId", network.vpc_id)
    pulumi.export("privateSubnetIds", network.private_subnet_ids)
    pulumi.export("gpuNodeGroupNames", cluster.gpu_node_group_names)
    # pr-* stacks on this cluster check at plan time that they fit in these GPUs.
    pulumi.export("prGpuSlots", cfg.pr_gpu_slots)
    # pr-* stacks on this cluster scale on this workspace, through this cluster's KEDA.
    pulumi.export("metricsQueryUrl", metrics.query_url)
    pulumi.export("ampWorkspaceArn", metrics.workspace_arn)
    pulumi.export("nodeProvisioner", cfg.scaling.node_provisioner.value)
    pulumi.export("applicationLogGroupName", logs.application_log_group_name)
    pulumi.export("containerInsightsKmsKeyArn", logs.kms_key_arn)
    pulumi.export(
        "logGroupNames",
        {"controlPlane": cluster.control_plane_log_group_name, **logs.log_group_names},
    )


def long_lived(cfg: StackConfig) -> None:
    """A whole environment: its own VPC, cluster, registry, secret and service."""
    image_ref = stack_config.require_image_ref(cfg)  # fails before anything is declared
    network = _network(cfg)
    before_compute = BeforeCompute("addons", cfg.kubernetes_version, cfg.resource_tags)
    cluster = _cluster(cfg, network, before_compute)
    logs = _container_insights(cfg, cluster)
    provider, addons = _addons(cfg, network, cluster, before_compute, logs)
    metrics, scaling_addons = _autoscaling(cfg, network, cluster, provider, addons)
    # One registry for every environment: dev's. CI pushes each commit's image there once;
    # staging and prod run those digests and declare no registry or build (docs/delivery.md).
    registry = _delivery_registry(cfg) if cfg.environment is Environment.DEV else None
    secret = _secret(cfg, cluster.name, cluster.arn)

    _export_platform(cfg, network, cluster, metrics, logs)
    if registry is not None:
        pulumi.export("ecrRepositoryUrl", registry.repository_url)
        pulumi.export("ecrRegistryId", registry.registry_id)
    pulumi.export("secretArn", secret.secret_arn)
    if image_ref is None:
        # dev's first `up` (imageRef "none"): the platform and the registry CI pushes to, no
        # service yet. CI then pushes the first image and deploys it by digest.
        pulumi.log.warn(
            "imageRef is 'none': the service is not deployed. Push an image to "
            "ecrRepositoryUrl, then `python -m tools.delivery.deploy --stack "
            f"{cfg.stack} --image REPO@sha256:<digest>`"
        )
        return
    _long_lived_service(
        cfg,
        image_ref,
        secret,
        provider,
        [addons, secret, *scaling_addons],
        cluster.name,
        logs,
        metrics.query_url,
    )


def _long_lived_service(
    cfg: StackConfig,
    image_ref: str,
    secret: ApiKeySecret,
    provider: k8s.Provider,
    depends_on: list[pulumi.Resource],
    cluster_name: pulumi.Input[str],
    logs: ContainerInsightsLogs,
    metrics_query_url: pulumi.Input[str],
) -> None:
    """The service of a long-lived stack: CI's image by digest (never a build here), promoted
    dev -> staging -> prod (docs/delivery.md), and its alarms."""
    workload = _workload(cfg, image_ref, secret, provider, depends_on, metrics_query_url)
    monitoring = ServiceMonitoring(
        "monitoring",
        ServiceMonitoringArgs(
            cluster_name=cluster_name,
            namespace=cfg.namespace,
            app_name=APP_NAME,
            application_log_group_name=logs.application_log_group_name,
            region=cfg.region,
            gpu_count=1 if cfg.image_variant is ImageVariant.CUDA else 0,
            kms_key_arn=logs.kms_key_arn,
            tags=cfg.resource_tags,
        ),
        opts=pulumi.ResourceOptions(depends_on=[workload]),
    )
    pulumi.export("imageRef", image_ref)
    pulumi.export("imageDigest", digest_of(image_ref))
    pulumi.export("namespace", workload.namespace)
    pulumi.export("serviceUrl", workload.in_cluster_url)
    pulumi.export("portForwardCommand", _port_forward(workload))
    pulumi.export("alarmNames", monitoring.alarm_names)


class NoGpuCapacityError(pulumi.RunError):
    """A pr stack would wait Pending for GPUs its cluster never provides."""


def _require_gpu_slots(cfg: StackConfig, slots: pulumi.Output[object]) -> None:
    """Refuse, at plan time, a pr stack that needs more GPUs than its cluster keeps for pr stacks.

    Without this the Deployment sits Pending until the provider's rollout await gives up after
    20 minutes.
    """

    def check(value: object) -> None:
        available = int(value) if isinstance(value, int | float | str) and str(value) else 0
        if cfg.gpus_needed > available:
            raise NoGpuCapacityError(
                f"{cfg.stack} needs {cfg.gpus_needed} GPU(s) (hpaMaxReplicas "
                f"{cfg.hpa_max_replicas} + 1 rollout surge) but {cfg.cluster_stack} keeps "
                f"prGpuSlots = {available} for pr stacks; raise prGpuSlots (and gpuNodeMax) on "
                "that stack, or set imageVariant: cpu here"
            )

    slots.apply(check)


def ephemeral(cfg: StackConfig) -> None:
    """A pr-<n> stack: a namespace, workload, secret and image tag on the borrowed cluster."""
    assert cfg.cluster_stack is not None  # load_stack_config guarantees it for pr stacks
    base = pulumi.StackReference(cfg.cluster_stack)
    cluster_name = base.require_output("clusterName")
    _require_gpu_slots(cfg, base.get_output("prGpuSlots"))
    provider = k8s.Provider("k8s", kubeconfig=base.require_output("kubeconfig"))
    image = ServiceImage(
        "image",
        ServiceImageArgs(
            repository_url=base.require_output("ecrRepositoryUrl"),
            registry_id=base.require_output("ecrRegistryId"),
            variant=cfg.image_variant,
            tag=_image_tag(cfg),
        ),
    )
    secret = _secret(cfg, cluster_name, base.require_output("clusterArn"))
    workload = _workload(
        cfg, image.repo_digest, secret, provider, [secret], base.require_output("metricsQueryUrl")
    )

    pulumi.export("environment", cfg.environment.value)
    pulumi.export("region", cfg.region)
    pulumi.export("clusterName", cluster_name)
    pulumi.export("imageName", image.image_name)
    pulumi.export("imageRef", image.repo_digest)
    pulumi.export("imageDigest", image.repo_digest.apply(digest_of))
    pulumi.export("secretArn", secret.secret_arn)
    pulumi.export("namespace", workload.namespace)
    pulumi.export("serviceUrl", workload.in_cluster_url)
    pulumi.export("portForwardCommand", _port_forward(workload))
    pulumi.export("expiresAt", cfg.expires_at_iso)


def main() -> None:
    """Validate the stack's configuration, then declare its resources."""
    cfg = stack_config.from_pulumi()
    if cfg.is_ephemeral:
        ephemeral(cfg)
    else:
        long_lived(cfg)


main()
