"""One pull-request comment per purpose, edited in place on every push.

Each comment starts with a hidden marker (``<!-- torch-eks-inference:preview:dev -->``); posting
again with the same marker edits that comment instead of adding one, so a PR has exactly one
preview comment per stack, one plan-diff comment per stack and one ephemeral-stack comment.

GitHub caps a comment at 65,536 characters. :func:`fit_comment` keeps the summary whole and cuts
the detail from its end, saying how much was cut and where the full text is (an artifact).

Only comments written by the workflow's own identity are ever edited: a comment carries the
marker AND its author is :data:`BOT_LOGIN` (the ``GITHUB_TOKEN``'s app, ``github-actions[bot]``,
a ``Bot``). Anyone can paste the marker into a comment of their own; that comment is left alone
and the bot posts its own instead.

Only the standard library is used, so the commenting job of forks' PRs (a ``workflow_run``
workflow that must not install or run the PR's code) needs nothing but Python.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: GitHub's limit on a comment body, in characters.
MAX_COMMENT_CHARS = 65_536
_MARKER_KEY = re.compile(r"[a-z0-9][a-z0-9:._-]{0,80}")
_API_TIMEOUT_S = 30
#: Author of comments made with a workflow's ``GITHUB_TOKEN``: the GitHub Actions app's bot user
#: (https://docs.github.com/en/actions/security-for-github-actions/security-guides/automatic-token-authentication).
BOT_LOGIN = "github-actions[bot]"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

#: ``(method, url, json body or None) -> (HTTP status, parsed JSON)``.
Transport = Callable[[str, str, Any], tuple[int, Any]]


class CommentError(Exception):
    """The comment could not be posted; the message names the request and GitHub's answer."""


def marker(key: str) -> str:
    """The hidden HTML comment that identifies one purpose's comment on a PR."""
    if not _MARKER_KEY.fullmatch(key):
        raise CommentError(f"comment key {key!r} must match {_MARKER_KEY.pattern}")
    return f"<!-- torch-eks-inference:{key} -->"


def fit_detail(summary: str, detail: str, reserve: int, limit: int = MAX_COMMENT_CHARS) -> str:
    """As much of ``detail`` as fits after ``summary`` with ``reserve`` characters to spare.

    The summary is never cut (raises if it alone does not fit); the detail is cut at a line
    boundary and, when cut, ends with a line saying how many lines were left out.
    """
    room = limit - len(summary) - reserve
    if room < 200:
        raise CommentError(f"comment summary alone is {len(summary)} characters (limit {limit})")
    if len(detail) <= room:
        return detail
    kept = detail[: room - 80]
    kept = kept[: kept.rfind("\n") + 1]
    cut = detail[len(kept) :].count("\n") + (0 if detail.endswith("\n") else 1)
    return f"{kept}... {cut} more lines cut to fit GitHub's comment limit\n"


def urllib_transport(token: str) -> Transport:
    """A :data:`Transport` over ``urllib`` that authenticates with ``token``."""

    def send(method: str, url: str, body: Any) -> tuple[int, Any]:
        parsed = urllib.parse.urlsplit(url)
        # Plain HTTP only to this machine (a local stand-in of the API); never over a network.
        if parsed.scheme != "https" and not (
            parsed.scheme == "http" and parsed.hostname in _LOOPBACK
        ):
            raise CommentError(f"refusing to send the token to a non-HTTPS URL: {url}")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=_API_TIMEOUT_S) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, {"message": exc.read().decode(errors="replace")[:500]}

    return send


@dataclass(frozen=True)
class GitHub:
    """The few REST calls the comment needs, on one repository."""

    repository: str
    transport: Transport
    api_url: str = "https://api.github.com"

    @classmethod
    def from_environment(cls) -> GitHub:
        """Built from ``GITHUB_TOKEN``, ``GITHUB_REPOSITORY`` and ``GITHUB_API_URL`` (Actions)."""
        token = os.environ.get("GITHUB_TOKEN", "")
        repository = os.environ.get("GITHUB_REPOSITORY", "")
        if not token or not repository:
            raise CommentError("GITHUB_TOKEN and GITHUB_REPOSITORY must be set to comment")
        api_url = os.environ.get("GITHUB_API_URL", "https://api.github.com")
        return cls(repository, urllib_transport(token), api_url.rstrip("/"))

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.transport(
            method, f"{self.api_url}/repos/{self.repository}{path}", body
        )
        if not 200 <= status < 300:
            message = payload.get("message") if isinstance(payload, dict) else payload
            raise CommentError(f"{method} {path} answered {status}: {message}")
        return payload

    def get(self, path: str) -> Any:
        """``GET`` a path of the repository's API (``/actions/...``); the JSON answer."""
        return self._call("GET", path)

    def pull_request(self, number: int) -> PullRequest:
        """State, labels and head commit of pull request ``number``, as GitHub has them now."""
        payload = self._call("GET", f"/pulls/{number}")
        labels = tuple(str(label.get("name", "")) for label in payload.get("labels") or [])
        return PullRequest(number, str(payload["state"]), labels, str(payload["head"]["sha"]))

    def pull_request_head(self, number: int) -> str:
        """The head commit of pull request ``number``."""
        return self.pull_request(number).head_sha

    def upsert_comment(self, number: int, key: str, body: str) -> str:
        """Edit the comment carrying ``key``'s marker, or create it; returns what it did."""
        tag = marker(key)
        text = f"{tag}\n{body}"
        if len(text) > MAX_COMMENT_CHARS:
            raise CommentError(f"comment is {len(text)} characters; fit it with fit_comment()")
        page = 1
        while True:
            comments = self._call("GET", f"/issues/{number}/comments?per_page=100&page={page}")
            for comment in comments:
                if str(comment.get("body", "")).startswith(tag) and is_own(comment):
                    self._call("PATCH", f"/issues/comments/{comment['id']}", {"body": text})
                    return "updated"
            if len(comments) < 100:
                break
            page += 1
        self._call("POST", f"/issues/{number}/comments", {"body": text})
        return "created"


@dataclass(frozen=True)
class PullRequest:
    """What delivery needs to know of a pull request at the moment it acts."""

    number: int
    state: str  # "open" or "closed"
    labels: tuple[str, ...]
    head_sha: str

    @property
    def open(self) -> bool:
        """True while the pull request is open."""
        return self.state == "open"


def is_own(comment: Any) -> bool:
    """True when ``comment`` (REST API issue comment) was written by the workflow's bot."""
    user = comment.get("user") or {}
    return bool(user.get("login") == BOT_LOGIN and user.get("type") == "Bot")


def parse_pr_number(text: str) -> int:
    """A PR number from untrusted text (an artifact of a fork's run): digits only."""
    stripped = text.strip()
    if not stripped.isdecimal() or not 0 < int(stripped) < 10**9:
        raise CommentError(f"not a pull request number: {stripped[:40]!r}")
    return int(stripped)
