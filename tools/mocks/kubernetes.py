"""Kubernetes resources: what the API server (and Helm) answer for the objects the program applies.

Every object gets its metadata completed as the API server does (a generated name when none was
given, a ``uid``); a Service gets a ``clusterIP`` from the service CIDR and, when it is of type
LoadBalancer, the NLB hostname the AWS Load Balancer Controller writes into its status
(``k8s-<name>-<hash>.elb.<region>.amazonaws.com``); a Helm release reports itself deployed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tools.mocks.context import ID, Context, OutputFn, autoname, hex_id, uuid_of


def _release(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    release = ctx.autoname(inputs)
    namespace = inputs.get("namespace", "default")
    status = {
        "name": release,
        "namespace": namespace,
        "status": "deployed",
        "chart": inputs.get("chart"),
        "version": inputs.get("version"),
        "revision": 1,
    }
    return {ID: f"{namespace}/{release}", "name": release, "status": status}


def generic(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Any API object: the metadata the API server completes, its id ``namespace/name``."""
    metadata = dict(inputs.get("metadata") or {})
    metadata.setdefault("name", autoname(ctx.name))
    metadata.setdefault("uid", uuid_of("k8s", ctx.typ, ctx.name))
    namespace = metadata.get("namespace")
    return {
        ID: f"{namespace}/{metadata['name']}" if namespace else metadata["name"],
        "metadata": metadata,
    }


def _service(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    out = generic(inputs, ctx)
    name = ctx.name
    spec = dict(inputs.get("spec") or {})
    octets = int(hex_id(name, length=2), 16), int(hex_id(name, "ip", length=2), 16)
    spec.setdefault("clusterIP", f"172.20.{octets[0]}.{octets[1]}")
    out["spec"] = spec
    if spec.get("type") == "LoadBalancer":
        host = f"k8s-{out['metadata']['name'][:20]}-{hex_id(name, length=10)}"
        ingress = [{"hostname": f"{host}.{ctx.endpoint('elb')}"}]
        out["status"] = {"loadBalancer": {"ingress": ingress}}
    return out


RESOURCES: Final[Mapping[str, OutputFn]] = {
    "kubernetes:helm.sh/v3:Release": _release,
    "kubernetes:core/v1:Service": _service,
}
