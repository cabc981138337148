"""The pod template of the inference Deployment, derived from the service's runtime contract.

Every port, path, environment variable name, UID and timing comes from ``service.contract``; this
module only decides how Kubernetes expresses them (probes, preStop, securityContext, GPU limits).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.k8s import labels
from infra.k8s.labels import GPU_RESOURCE, GPU_TAINT_EFFECT, GPU_TAINT_KEY, GPU_TAINT_VALUE
from service import contract

#: Name of the container port; probes, the Service and the NetworkPolicy refer to it.
HTTP_PORT_NAME = "http"
#: Name of the in-memory volume mounted at the contract's only writable path.
TMP_VOLUME_NAME = "tmp"

_DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_DNS_LABEL = re.compile(labels.DNS_1035_LABEL)
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


def require_digest_reference(image: str) -> str:
    """Return ``image`` if it pins a digest (``repo@sha256:<64 hex>``), else raise ``ValueError``.

    A tag can be moved to another image after review; a digest cannot, so the Deployment only ever
    runs the exact bytes that were built, scanned and pushed.
    """
    if not _DIGEST_REF.match(image):
        raise ValueError(
            f"image {image!r} is not pinned by digest: expected '<repository>@sha256:<64 hex>' "
            "(use the pushed image's repoDigest, never a tag)"
        )
    return image


def require_dns_label(what: str, value: str) -> str:
    """Return ``value`` if it is a DNS label (a valid Namespace, Service or container name)."""
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{what} {value!r} is not a DNS label: 1-63 lowercase letters, digits or '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return value


def require_quantity(name: str, value: str) -> str:
    """Return ``value`` if it is a Kubernetes resource quantity (``500m``, ``2Gi`` ...)."""
    if not _QUANTITY.match(value):
        raise ValueError(
            f"{name} {value!r} is not a Kubernetes quantity such as '500m', '2', '512Mi' or '4Gi'"
        )
    return value


@dataclass(frozen=True)
class ContainerResources:
    """CPU and memory requests and limits of the inference container (Kubernetes quantities)."""

    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "2Gi"
    memory_limit: str = "4Gi"
    #: Size of the tmpfs at ``contract.WRITABLE_DIR``; it counts against the memory limit.
    tmp_size_limit: str = "256Mi"

    def __post_init__(self) -> None:
        for field_name in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
            require_quantity(field_name, getattr(self, field_name))
        require_quantity("tmp_size_limit", self.tmp_size_limit)


@dataclass(frozen=True)
class ServiceSettings:
    """Tunables of the inference service, written into the container's environment."""

    model_name: str = contract.DEFAULT_MODEL_NAME
    #: ``None`` keeps the model bundled in the image (``contract.BUNDLED_MODEL_DIR``).
    model_uri: str | None = None
    max_batch_size: int = contract.DEFAULT_MAX_BATCH_SIZE
    batch_timeout_ms: float = contract.DEFAULT_BATCH_TIMEOUT_MS
    max_request_bytes: int = contract.DEFAULT_MAX_REQUEST_BYTES
    log_level: str = contract.DEFAULT_LOG_LEVEL
    torch_threads: int = contract.DEFAULT_TORCH_THREADS

    def __post_init__(self) -> None:
        if not self.model_name:
            raise ValueError("model_name must not be empty")
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size {self.max_batch_size} must be at least 1")
        if self.batch_timeout_ms < 0:
            raise ValueError(f"batch_timeout_ms {self.batch_timeout_ms} must not be negative")
        if self.max_request_bytes < 1:
            raise ValueError(f"max_request_bytes {self.max_request_bytes} must be at least 1")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads {self.torch_threads} must be at least 1")


def device_for(gpu_count: int) -> str:
    """The ``DEVICE`` value for a pod with ``gpu_count`` GPUs: fail fast instead of auto-fallback.

    ``auto`` would silently serve on CPU when a GPU pod lost its device; naming the device makes
    that a start-up error that the probes turn into a visible rollout failure.
    """
    device = "cuda" if gpu_count > 0 else "cpu"
    if device not in contract.DEVICES:
        raise ValueError(f"DEVICE {device!r} is not one of the contract's {contract.DEVICES}")
    return device


def container_env(
    settings: ServiceSettings,
    *,
    gpu_count: int,
    aws_region: str,
    secret_arn: pulumi.Input[str] | None,
) -> list[k8s.core.v1.EnvVarArgs]:
    """The container's environment: names from ``contract.ENV``, values from the arguments."""
    env = contract.ENV
    values: list[tuple[str, pulumi.Input[str]]] = [
        (env.PORT, str(contract.DEFAULT_PORT)),
        (env.MODEL_NAME, settings.model_name),
        (env.DEVICE, device_for(gpu_count)),
        (env.MAX_BATCH_SIZE, str(settings.max_batch_size)),
        (env.BATCH_TIMEOUT_MS, str(settings.batch_timeout_ms)),
        (env.MAX_REQUEST_BYTES, str(settings.max_request_bytes)),
        (env.AWS_REGION, aws_region),
        (env.LOG_LEVEL, settings.log_level),
        (env.TORCH_THREADS, str(settings.torch_threads)),
        # The server's own defaults, written out so the manifest shows the whole contract.
        (env.MAX_QUEUED_ROWS, str(contract.default_max_queued_rows(settings.max_batch_size))),
        (env.DRAIN_PERIOD_SECONDS, str(contract.SHUTDOWN.drain_period_seconds)),
    ]
    if settings.model_uri is not None:
        values.append((env.MODEL_URI, settings.model_uri))
    if secret_arn is not None:
        # Only the ARN travels in the manifest; the key itself is fetched by the pod at start-up.
        values.append((env.API_KEY_SECRET_ARN, secret_arn))
    return [k8s.core.v1.EnvVarArgs(name=name, value=value) for name, value in values]


def _http_probe(path: str, *, period: int, failure_threshold: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=HTTP_PORT_NAME),
        period_seconds=period,
        timeout_seconds=contract.PROBES.timeout_seconds,
        failure_threshold=failure_threshold,
    )


@dataclass(frozen=True)
class ContainerProbes:
    """The three probes of the inference container."""

    liveness: k8s.core.v1.ProbeArgs
    readiness: k8s.core.v1.ProbeArgs
    startup: k8s.core.v1.ProbeArgs


def probes() -> ContainerProbes:
    """Liveness, readiness and startup probes on the contract's health routes and timings.

    The startup probe watches the start-up path (200 once the model is loaded and warmed) with a
    long budget, so a slow model load is never mistaken for a hung process; readiness gates
    traffic until then and again from SIGTERM on.
    """
    p = contract.PROBES
    return ContainerProbes(
        liveness=_http_probe(
            contract.PATHS.LIVE, period=p.period_seconds, failure_threshold=p.failure_threshold
        ),
        readiness=_http_probe(
            contract.PATHS.READY, period=p.period_seconds, failure_threshold=p.failure_threshold
        ),
        startup=_http_probe(
            contract.PATHS.STARTUP,
            period=p.startup_period_seconds,
            failure_threshold=p.startup_failure_threshold,
        ),
    )


def container_security_context() -> k8s.core.v1.SecurityContextArgs:
    """The pod-security ``restricted`` profile, plus a read-only root filesystem."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=contract.RUN_AS_UID,
        run_as_group=contract.RUN_AS_GID,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        privileged=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def pod_security_context() -> k8s.core.v1.PodSecurityContextArgs:
    """Pod-level identity: the contract's unprivileged UID/GID, RuntimeDefault seccomp."""
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=contract.RUN_AS_UID,
        run_as_group=contract.RUN_AS_GID,
        fs_group=contract.RUN_AS_GID,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def resource_requirements(
    resources: ContainerResources, gpu_count: int
) -> k8s.core.v1.ResourceRequirementsArgs:
    """Requests and limits; GPUs are an extended resource, so request must equal limit."""
    requests = {"cpu": resources.cpu_request, "memory": resources.memory_request}
    limits = {"cpu": resources.cpu_limit, "memory": resources.memory_limit}
    if gpu_count > 0:
        requests[GPU_RESOURCE] = str(gpu_count)
        limits[GPU_RESOURCE] = str(gpu_count)
    return k8s.core.v1.ResourceRequirementsArgs(requests=requests, limits=limits)


def gpu_tolerations(gpu_count: int) -> list[k8s.core.v1.TolerationArgs]:
    """The toleration of the GPU node taint, only for pods that actually use a GPU."""
    if gpu_count == 0:
        return []
    return [
        k8s.core.v1.TolerationArgs(
            key=GPU_TAINT_KEY,
            operator="Equal",
            value=GPU_TAINT_VALUE,
            effect=GPU_TAINT_EFFECT,
        )
    ]


def topology_spread(selector: Mapping[str, str]) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Spread replicas over zones and hosts.

    ``ScheduleAnyway`` rather than ``DoNotSchedule``: GPU capacity (spot especially) is often
    missing in one zone, and a hard rule would then leave replicas pending instead of serving.
    ``pod-template-hash`` scopes the skew to one rollout revision so old pods do not distort it.
    """
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector)),
            match_label_keys=["pod-template-hash"],
        )
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


@dataclass(frozen=True)
class PodTemplateInputs:
    """Everything the pod template is built from."""

    container_name: str
    image: pulumi.Input[str]
    service_account_name: pulumi.Input[str]
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    annotations: Mapping[str, str]
    gpu_count: int
    node_selector: Mapping[str, str]
    resources: ContainerResources
    settings: ServiceSettings
    aws_region: str
    secret_arn: pulumi.Input[str] | None


def pod_template(inputs: PodTemplateInputs) -> k8s.core.v1.PodTemplateSpecArgs:
    """The Deployment's pod template: one container serving the contract, nothing privileged."""
    container_probes = probes()
    container = k8s.core.v1.ContainerArgs(
        name=inputs.container_name,
        image=inputs.image,
        # With a digest reference "Always" only re-resolves the manifest, never re-pulls layers,
        # and it makes the kubelet check the node is still allowed to pull the image.
        image_pull_policy="Always",
        ports=[
            k8s.core.v1.ContainerPortArgs(
                name=HTTP_PORT_NAME, container_port=contract.DEFAULT_PORT, protocol="TCP"
            )
        ],
        env=container_env(
            inputs.settings,
            gpu_count=inputs.gpu_count,
            aws_region=inputs.aws_region,
            secret_arn=inputs.secret_arn,
        ),
        resources=resource_requirements(inputs.resources, inputs.gpu_count),
        security_context=container_security_context(),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name=TMP_VOLUME_NAME, mount_path=contract.WRITABLE_DIR)
        ],
        # The image has no shell, so preStop uses the kubelet's built-in sleep action (k8s 1.30+):
        # it keeps the pod serving while endpoints and load balancers stop routing to it.
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                sleep=k8s.core.v1.SleepActionArgs(seconds=contract.SHUTDOWN.pre_stop_sleep_seconds)
            )
        ),
        termination_message_policy="FallbackToLogsOnError",
        liveness_probe=container_probes.liveness,
        readiness_probe=container_probes.readiness,
        startup_probe=container_probes.startup,
    )
    volumes: Sequence[k8s.core.v1.VolumeArgs] = [
        k8s.core.v1.VolumeArgs(
            name=TMP_VOLUME_NAME,
            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                medium="Memory", size_limit=inputs.resources.tmp_size_limit
            ),
        )
    ]
    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(
            labels=dict(inputs.labels), annotations=dict(inputs.annotations) or None
        ),
        spec=k8s.core.v1.PodSpecArgs(
            service_account_name=inputs.service_account_name,
            # The API token is not needed: AWS credentials come from EKS Pod Identity's own
            # projected token, and the service never talks to the Kubernetes API.
            automount_service_account_token=False,
            # Service links would inject *_PORT variables that could shadow the contract's PORT.
            enable_service_links=False,
            security_context=pod_security_context(),
            termination_grace_period_seconds=contract.SHUTDOWN.termination_grace_period_seconds,
            containers=[container],
            volumes=volumes,
            node_selector=dict(inputs.node_selector) or None,
            tolerations=gpu_tolerations(inputs.gpu_count) or None,
            topology_spread_constraints=topology_spread(inputs.selector),
        ),
    )
