"""Scan an image's layers for key-like strings (credentials that must never be baked in).

``docker save`` writes the image as a tar of layer tars; every regular file of every layer is read
in chunks and matched against patterns for AWS access key ids, AWS secret key assignments,
PEM private keys (a header followed by a base64 body, so code that merely parses PEM headers is
not flagged) and GitHub tokens. Keys containing ``EXAMPLE`` are allowed: AWS documents such keys
and botocore ships them in its API examples. A cheap literal search for each pattern's anchor runs
first, so the regular expressions only see the rare chunks that could match.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

PATTERNS: dict[str, re.Pattern[bytes]] = {
    "AWS access key id": re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    "AWS secret access key": re.compile(
        rb"(?i)aws_secret_access_key\s*[=:]\s*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
    ),
    "private key": re.compile(
        rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
        rb"\s+(?:[A-Za-z-]+: [^\n]*\n\s*)*[A-Za-z0-9+/=]{40,}"
    ),
    "GitHub token": re.compile(rb"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
}
#: Literal strings at least one of which a chunk must contain for each pattern to be tried.
ANCHORS: dict[str, tuple[bytes, ...]] = {
    "AWS access key id": (b"AKIA", b"ASIA"),
    "AWS secret access key": (b"ecret_access_key", b"ECRET_ACCESS_KEY", b"ecret_Access_Key"),
    "private key": (b"PRIVATE KEY",),
    "GitHub token": (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),
}
#: Marker of documentation keys (AKIAIOSFODNN7EXAMPLE and the like); they grant nothing.
ALLOWED_MARKER = b"EXAMPLE"
#: Files of the base system known to embed throwaway keys, each with the reason it is harmless.
ALLOWED_FILES: dict[str, tuple[str, str]] = {
    "private key": (
        r"(^|/)usr/lib/x86_64-linux-gnu/libgnutls\.so\.[0-9.]+$",
        "GnuTLS's gnutls_pk_self_test keys, public in its source, for the FIPS power-on tests",
    ),
}


def allowed(kind: str, path: str) -> bool:
    """True when ``path`` is a known file whose ``kind`` matches are harmless."""
    entry = ALLOWED_FILES.get(kind)
    return entry is not None and re.search(entry[0], path) is not None


_CHUNK = 8 * 1024 * 1024
#: Bytes carried over between chunks so a match that straddles a boundary is still found.
_OVERLAP = 256


@dataclass(frozen=True)
class Finding:
    """One key-like string: which layer and file, which pattern, and a masked excerpt."""

    layer: str
    path: str
    kind: str
    excerpt: str


def _masked(match: bytes) -> str:
    text = match.decode("latin-1")
    return text[:8] + "*" * max(0, len(text) - 8)


def scan_bytes(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Every (kind, matched bytes) in ``data`` that is not an allowed example."""
    for kind, pattern in PATTERNS.items():
        if not any(anchor in data for anchor in ANCHORS[kind]):
            continue
        for match in pattern.finditer(data):
            found = match.group(0)
            if ALLOWED_MARKER not in found:
                yield kind, found


def scan_stream(stream: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """Scan a file object chunk by chunk; each match is reported once."""
    tail = b""
    seen: set[tuple[str, bytes]] = set()
    while chunk := stream.read(_CHUNK):
        window = tail + chunk
        for hit in scan_bytes(window):
            if hit not in seen:
                seen.add(hit)
                yield hit
        tail = window[-_OVERLAP:]


def scan_layer(layer: IO[bytes], layer_name: str) -> Iterator[Finding]:
    """Scan every regular file of one layer tar (read as a stream)."""
    with tarfile.open(fileobj=layer, mode="r|*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            for kind, found in scan_stream(handle):
                if not allowed(kind, member.name):
                    yield Finding(layer_name, member.name, kind, _masked(found))


def scan_saved_image(saved: IO[bytes]) -> list[Finding]:
    """Scan a ``docker save`` stream: every layer tar inside it, and the image config."""
    findings: list[Finding] = []
    with tarfile.open(fileobj=saved, mode="r|*") as archive:
        for member in archive:
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is None:
                continue
            if member.name.endswith(".tar"):
                findings.extend(scan_layer(handle, member.name))
            else:
                # Image config and manifest: env, labels, history.
                findings.extend(
                    Finding(member.name, member.name, kind, _masked(found))
                    for kind, found in scan_stream(handle)
                )
    return findings
