"""Mandatory policies on Kubernetes workloads: pinned images, non-root containers, GPU requests."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .props import GPU_RESOURCE, WORKLOAD_TYPES, containers, get, pod_spec, quantity_text

_DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")

Validate = Callable[[ResourceValidationArgs, ReportViolation], None]


def _for_each_container(check: Callable[[Any, str, Any, ReportViolation], None]) -> Validate:
    """Run ``check(pod_spec, label, container, report)`` on every container of a workload."""

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type not in WORKLOAD_TYPES:
            return
        spec = pod_spec(args.resource_type, args.props)
        for label, container in containers(spec):
            check(spec, label, container, report)

    return validate


def _image_by_digest(spec: Any, label: str, container: Any, report: ReportViolation) -> None:
    image = get(container, "image")
    if not isinstance(image, str) or not _DIGEST_REFERENCE.match(image):
        report(
            f"{label}: image {image!r} is not pinned by digest; use "
            "'<repository>@sha256:<64 hex>' (a tag can be moved to another image after review)",
            None,
        )


def _non_root(spec: Any, label: str, container: Any, report: ReportViolation) -> None:
    pod, own = get(spec, "securityContext"), get(container, "securityContext")

    def effective(key: str) -> Any:
        value = get(own, key)
        return value if value is not None else get(pod, key)

    if effective("runAsNonRoot") is not True:
        report(f"{label}: runAsNonRoot must be true (container or pod securityContext)", None)
    if effective("runAsUser") == 0:
        report(f"{label}: runAsUser is 0 (root)", None)
    if get(own, "privileged") is True:
        report(f"{label}: privileged must not be true", None)
    if get(own, "allowPrivilegeEscalation") is not False:
        report(f"{label}: securityContext.allowPrivilegeEscalation must be false", None)


def _gpu_requests_equal_limits(
    spec: Any, label: str, container: Any, report: ReportViolation
) -> None:
    limit = get(container, "resources", "limits", GPU_RESOURCE)
    request = get(container, "resources", "requests", GPU_RESOURCE)
    if limit is None and request is None:
        return
    if limit is None or request is None or quantity_text(limit) != quantity_text(request):
        report(
            f"{label}: {GPU_RESOURCE} request {request!r} must equal its limit {limit!r} "
            "(GPUs cannot be shared or overcommitted; state both)",
            None,
        )


image_pinned_by_digest = ResourceValidationPolicy(
    name="image-pinned-by-digest",
    description="Workload containers reference their image by digest, never by a mutable tag.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_for_each_container(_image_by_digest),
)

containers_not_root = ResourceValidationPolicy(
    name="containers-not-root",
    description="Containers run as non-root, unprivileged, without privilege escalation.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_for_each_container(_non_root),
)

gpu_requests_equal_limits = ResourceValidationPolicy(
    name="gpu-requests-equal-limits",
    description="Containers that use GPUs request exactly the GPUs they are limited to.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_for_each_container(_gpu_requests_equal_limits),
)

POLICIES = [image_pinned_by_digest, containers_not_root, gpu_requests_equal_limits]
