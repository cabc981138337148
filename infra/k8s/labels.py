"""Kubernetes names, label keys and patterns this project uses, each written once.

Sources, read 2026-12-01:
- https://kubernetes.io/docs/concepts/overview/working-with-objects/names/ : an RFC 1123 label
  (namespaces, most object names) is at most 63 characters of lowercase alphanumerics or ``-``,
  starting and ending with an alphanumeric; an RFC 1035 label (Service names, container ports'
  names) must also start with a letter.
- https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/getting-started.html and the
  NVIDIA device plugin README (https://github.com/NVIDIA/k8s-device-plugin): GPUs are the extended
  resource ``nvidia.com/gpu``; the EKS GPU node groups carry a ``nvidia.com/gpu`` taint so that
  only pods that tolerate it (GPU workloads) land there.
"""

from __future__ import annotations

from typing import Final

#: RFC 1123 label: namespaces and most object names (at most 63 characters).
DNS_1123_LABEL: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
#: RFC 1035 label: like DNS_1123_LABEL, but starting with a letter (Service names, for example).
DNS_1035_LABEL: Final = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
#: The extended resource a pod requests to get a whole NVIDIA GPU.
GPU_RESOURCE: Final = "nvidia.com/gpu"
#: Taint of the GPU nodes; only GPU workloads tolerate it.
GPU_TAINT_KEY: Final = GPU_RESOURCE
GPU_TAINT_VALUE: Final = "true"
GPU_TAINT_EFFECT: Final = "NoSchedule"
