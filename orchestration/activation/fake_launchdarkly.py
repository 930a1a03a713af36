"""A local fake of the LaunchDarkly REST API segments endpoints, written from the docs
(stack-notes-turn3.md §1; https://launchdarkly.com/docs/api/segments and the
launchdarkly/api-client-python README sections "Errors", "Rate limiting", "Updates using
semantic patch"). Conformance checks: tests/test_fake_launchdarkly.py.

Implements: raw-token `Authorization` (no Bearer; 401 `{"code","message","id"}` otherwise);
`GET /api/v2/projects/{p}`; segments list (paginated, `limit` default 20), create (201 / 409),
get (200 / 404), delete (204) and semantic-patch `PATCH` (the
`domain-model=launchdarkly.semanticpatch` content type, `environmentKey` required,
`add|removeIncluded|ExcludedTargets` with `contextKind` + `values`, at most 1,500 target
operations, a key both included and excluded = 400, all-or-nothing). Rate limiting per
fixed 10 s window with `X-Ratelimit-Route-Remaining` and `X-Ratelimit-Reset` (epoch ms).
Not modelled: the global (account) limit, big segments' `/contexts`, JSON Patch.

Run: `segflow fake-launchdarkly --port 8766 --token T`; read back with `GET /_fake/state`.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any
from urllib.parse import unquote

from .fake_http import FakeAPI, FaultConfig, add_fake_arguments, command_faults, serve_fake

SEMANTIC_PATCH = "domain-model=launchdarkly.semanticpatch"
API_VERSIONS = {"20240415", "20220603", "beta"}
MAX_TARGET_OPERATIONS = 1500
TARGET_KINDS = {
    "addIncludedTargets": ("included", "add"),
    "removeIncludedTargets": ("included", "remove"),
    "addExcludedTargets": ("excluded", "add"),
    "removeExcludedTargets": ("excluded", "remove"),
}


class FakeLaunchDarkly(FakeAPI):
    label = "LaunchDarkly"

    def __init__(
        self,
        token: str = "fake-ld-token",
        project: str = "default",
        environments: tuple[str, ...] = ("production", "test"),
        faults: FaultConfig | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(faults, **kw)
        self.token = token
        self.project = project
        self.environments = environments
        # (env, key) -> segment; targets as {"included"|"excluded": {kind: set(keys)}}
        self.segments: dict[tuple[str, str], dict[str, Any]] = {}
        self.patches: list[dict[str, Any]] = []  # applied semantic patches, in order

    # -- read-back -----------------------------------------------------------------------
    def members(self, key: str, env: str = "production", kind: str = "user") -> set[str]:
        with self.lock:
            segment = self.segments.get((env, key))
            return set(segment["targets"]["included"].get(kind, ())) if segment else set()

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": len(self.request_log),
            "status_counts": dict(self.status_counts),
            "segments": {
                f"{env}/{key}": self._render(seg) for (env, key), seg in self.segments.items()
            },
        }

    # -- protocol ------------------------------------------------------------------------
    def authorized(self, headers: Any) -> bool:
        return headers.get("Authorization") == self.token

    def error_body(self, status: int, code: str, message: str) -> Any:
        codes = {401: "unauthorized", 404: "not_found", 409: "conflict", 429: "rate_limited"}
        return {"code": codes.get(status, code), "message": message, "id": str(uuid.uuid4())}

    def rate_headers(self, limit: int, remaining: int, reset_s: float) -> dict[str, str]:
        return {
            "X-Ratelimit-Route-Remaining": str(remaining),
            "X-Ratelimit-Reset": str(int(reset_s * 1000)),
        }

    def route(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any]:
        version = headers.get("LD-API-Version")
        if version and version not in API_VERSIONS:
            return 400, self.error_body(400, "invalid_request", f"unknown API version {version}")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] != ["api", "v2"]:
            return 404, self.error_body(404, "not_found", "Unknown resource")
        if parts[2:3] == ["projects"] and len(parts) == 4 and method == "GET":
            if parts[3] != self.project:
                return 404, self.error_body(404, "not_found", "Unknown project")
            return 200, {"key": self.project, "name": self.project}
        if parts[2:3] != ["segments"] or len(parts) not in (5, 6):
            return 404, self.error_body(404, "not_found", "Unknown resource")
        if parts[3] != self.project or parts[4] not in self.environments:
            return 404, self.error_body(404, "not_found", "Unknown project or environment")
        env = parts[4]
        if len(parts) == 5:
            if method == "GET":
                return self._list(env, query)
            if method == "POST":
                return self._create(env, body)
            return 405, self.error_body(405, "method_not_allowed", "Method not allowed")
        key = parts[5]
        segment = self.segments.get((env, key))
        if segment is None:
            return 404, self.error_body(404, "not_found", "Unknown segment")
        if method == "GET":
            return 200, self._render(segment)
        if method == "DELETE":
            del self.segments[(env, key)]
            return 204, None
        if method == "PATCH":
            return self._patch(env, segment, headers.get("Content-Type", ""), body)
        return 405, self.error_body(405, "method_not_allowed", "Method not allowed")

    def _list(self, env: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        limit = int((query.get("limit") or ["20"])[0])
        offset = int((query.get("offset") or ["0"])[0])
        found = [self._render(s) for (e, _), s in sorted(self.segments.items()) if e == env]
        tag_filter = (query.get("filter") or [""])[0]
        if tag_filter.startswith("tags:"):
            found = [s for s in found if tag_filter[5:] in s["tags"]]
        return 200, {"items": found[offset : offset + limit], "totalCount": len(found)}

    def _create(self, env: str, body: bytes) -> tuple[int, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return 400, self.error_body(400, "invalid_request", "body is not valid JSON")
        key, name = data.get("key"), data.get("name")
        if not isinstance(key, str) or not key or not isinstance(name, str) or not name:
            return 400, self.error_body(400, "invalid_request", "name and key are required")
        if (env, key) in self.segments:
            return 409, self.error_body(409, "conflict", f"segment {key} already exists")
        self.segments[(env, key)] = {
            "key": key,
            "name": name,
            "description": data.get("description", ""),
            "tags": list(data.get("tags") or []),
            "unbounded": bool(data.get("unbounded", False)),
            "version": 1,
            "targets": {"included": {}, "excluded": {}},
        }
        return 201, self._render(self.segments[(env, key)])

    def _patch(
        self, env: str, segment: dict[str, Any], content_type: str, body: bytes
    ) -> tuple[int, Any]:
        if SEMANTIC_PATCH not in content_type:
            return 400, self.error_body(
                400, "invalid_request", "expected a JSON Patch array (no semantic-patch type)"
            )
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return 400, self.error_body(400, "invalid_request", "body is not valid JSON")
        if data.get("environmentKey") != env:
            return 400, self.error_body(400, "invalid_request", "environmentKey is required")
        instructions = data.get("instructions")
        if not isinstance(instructions, list) or not instructions:
            return 400, self.error_body(400, "invalid_request", "instructions are required")
        targets = {
            side: {k: set(v) for k, v in m.items()} for side, m in segment["targets"].items()
        }
        operations = 0
        for instruction in instructions:
            kind = instruction.get("kind") if isinstance(instruction, dict) else None
            values = instruction.get("values") if kind else None
            if kind not in TARGET_KINDS or not isinstance(values, list):
                return 400, self.error_body(400, "invalid_request", f"invalid instruction {kind}")
            operations += len(values)
            side, op = TARGET_KINDS[kind]
            bucket = targets[side].setdefault(instruction.get("contextKind") or "user", set())
            if op == "add":
                bucket.update(str(v) for v in values)
            else:
                bucket.difference_update(str(v) for v in values)
        if operations > MAX_TARGET_OPERATIONS:
            return 400, self.error_body(
                400,
                "invalid_request",
                f"the number of operations on targets exceeds the batch limit of "
                f"{MAX_TARGET_OPERATIONS}",
            )
        for kind, keys in targets["included"].items():
            both = keys & targets["excluded"].get(kind, set())
            if both:
                return 400, self.error_body(
                    400, "invalid_request", f"targets both included and excluded: {sorted(both)}"
                )
        segment["targets"] = targets  # all-or-nothing: only now applied
        segment["version"] += 1
        self.patches.append({"env": env, "segment": segment["key"], **data})
        return 200, self._render(segment)

    @staticmethod
    def _render(segment: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in segment.items() if k != "targets"}
        for side in ("included", "excluded"):
            by_kind = segment["targets"][side]
            out[side] = sorted(by_kind.get("user", ()))
            out[f"{side}Contexts"] = [
                {"contextKind": kind, "values": sorted(keys)}
                for kind, keys in sorted(by_kind.items())
                if kind != "user"
            ]
        return out


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_fake_arguments(parser, port=8766, token_env="LAUNCHDARKLY_ACCESS_TOKEN", rate_limit=0)
    parser.add_argument("--project", default="default", help="project key")
    return parser


def serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; prints the URL (never the token)."""
    fake = FakeLaunchDarkly(
        token=args.token or os.environ.get("LAUNCHDARKLY_ACCESS_TOKEN") or "fake-ld-token",
        project=args.project,
        faults=command_faults(args),
        host=args.host,
        port=args.port,
    )
    return serve_fake(fake, "LaunchDarkly", "LAUNCHDARKLY_BASE_URL")
