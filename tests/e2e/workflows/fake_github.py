"""A local stand-in for the slice of GitHub's REST API the workflows' commands call.

Served over HTTP on 127.0.0.1 (the delivery code sends its token over plain HTTP to this machine
only). Routes, shaped like https://docs.github.com/en/rest : ``GET /repos/o/r/pulls/N``,
``GET|POST /repos/o/r/issues/N/comments``, ``PATCH /repos/o/r/issues/comments/ID``,
``GET /repos/o/r/actions/workflows/F/runs``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT = {"login": "github-actions[bot]", "type": "Bot"}


@dataclass
class GitHubState:
    """Pull requests, comments and CI runs of repository ``o/r``."""

    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    ci_runs: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def pull(self, number: int, state: str = "open", labels: tuple[str, ...] = ()) -> None:
        """Add or change pull request ``number``."""
        self.pulls[number] = {
            "number": number,
            "state": state,
            "labels": [{"name": name} for name in labels],
            "head": {"sha": f"{number:040d}"},
        }

    def answer(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        """The API's answer to one request."""
        parts = urlsplit(url)
        path = parts.path.removeprefix("/repos/o/r")
        self.requests.append((method, path))
        segments = path.strip("/").split("/")
        if method == "GET" and segments[0] == "pulls":
            pull = self.pulls.get(int(segments[1]))
            return (200, pull) if pull else (404, {"message": "Not Found"})
        if segments[:1] == ["issues"] and segments[-1] == "comments":
            number = int(segments[1])
            if method == "GET":
                page = int(parse_qs(parts.query).get("page", ["1"])[0])
                mine = [c for c in self.comments.values() if c["issue"] == number]
                return 200, mine[(page - 1) * 100 : page * 100]
            comment_id = len(self.comments) + 1
            self.comments[comment_id] = {
                "id": comment_id, "issue": number, "body": body["body"], "user": BOT,
            }  # fmt: skip
            return 201, self.comments[comment_id]
        if method == "PATCH" and segments[:2] == ["issues", "comments"]:
            self.comments[int(segments[2])]["body"] = body["body"]
            return 200, {}
        if method == "GET" and segments[:2] == ["actions", "workflows"]:
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            runs = [
                run
                for run in self.ci_runs
                if run["path"].endswith(segments[2])
                and run["head_sha"] == query.get("head_sha")
                and run["head_branch"] == query.get("branch", run["head_branch"])
                and run["event"] == query.get("event", run["event"])
                and run["conclusion"] == query.get("status", run["conclusion"])
            ]
            return 200, {"total_count": len(runs), "workflow_runs": runs}
        return 404, {"message": f"Not Found: {method} {path}"}


@contextlib.contextmanager
def serve(state: GitHubState) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1; yields the API base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = state.answer(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _reply  # noqa: N815 - http.server's naming

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
