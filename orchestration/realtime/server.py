"""`segflow serve`: the profile API and OpenFeature Remote Evaluation Protocol (OFREP).

- `GET /v1/profiles/{user_id}`: segments with reasons, flow, next block, experiment arm,
  scores with bands and top reasons. An unknown user gets the documented default
  (`"known": false`, the default flow and its first block), never an error.
- `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags` (bulk, with
  ETag / If-None-Match -> 304), per the OFREP spec; every success carries `variant`.
Read keys (SEGFLOW_READ_KEYS) as `Authorization: Bearer <key>` or `X-API-Key`; the write
keys of the collector are not accepted here. Reads only the snapshot and the intraday state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from orchestration.realtime.flags import Flag
from orchestration.realtime.httpbase import BodyTooLarge, JsonHandler, Server, key_matches
from orchestration.realtime.profiles import ProfileReader

MAX_BODY = 64 * 1024
FLAGS_PATH = "/ofrep/v1/evaluate/flags"


class ProfileServer(Server):
    def __init__(
        self,
        address: tuple[str, int],
        reader: ProfileReader,
        flags: dict[str, Flag],
        read_keys: Sequence[str],
        cors_origins: Sequence[str] = (),
    ):
        if not read_keys:
            raise ValueError("no read keys: set SEGFLOW_READ_KEYS (comma-separated)")
        self.reader = reader
        self.flags = flags
        self.read_keys = tuple(read_keys)
        self.cors_origins = tuple(cors_origins)
        super().__init__(address, _Handler)


class _Handler(JsonHandler):
    server: ProfileServer
    cors_methods = "GET, POST, OPTIONS"
    cors_expose = "ETag"

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization") or ""
        key = header[7:].strip() if header.lower().startswith("bearer ") else None
        key = key or self.headers.get("X-API-Key")
        return key_matches(key, self.server.read_keys)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0]
        if not path.startswith("/v1/profiles/") or len(path) <= len("/v1/profiles/"):
            self.reply(404, {"message": f"unknown endpoint {path}"})
            return
        if not self._authorised():
            self.reply(401, {"message": "missing or invalid read key"})
            return
        user_id = unquote(path[len("/v1/profiles/") :])
        reader = self.server.reader
        self.reply(200, reader.profile(user_id) or reader.default(user_id))

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            raw = self.read_body(MAX_BODY)
        except BodyTooLarge as exc:
            self.reply(400, {"errorCode": "INVALID_CONTEXT", "errorDetails": str(exc)})
            return
        if path != FLAGS_PATH and not path.startswith(FLAGS_PATH + "/"):
            self.reply(404, {"errorCode": "FLAG_NOT_FOUND", "errorDetails": f"no endpoint {path}"})
            return
        if not self._authorised():
            self.reply(401)
            return
        key = unquote(path[len(FLAGS_PATH) + 1 :]) if path != FLAGS_PATH else None
        context, error = _context(raw)
        if error:
            self.reply(400, {**({"key": key} if key else {}), **error})
            return
        reader, user_id = self.server.reader, str(context["targetingKey"])
        profile = reader.profile(user_id) or reader.default(user_id)
        if key is not None:
            flag = self.server.flags.get(key)
            if flag is None:
                self.reply(
                    404,
                    {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": "not in flows.yml"},
                )
                return
            self.reply(200, _success(flag, profile))
            return
        body = {"flags": [_success(f, profile) for f in self.server.flags.values()]}
        etag = (
            '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'
        )
        if self.headers.get("If-None-Match") == etag:
            self.reply(304, None, {"ETag": etag})
            return
        self.reply(200, body, {"ETag": etag})


def _context(raw: bytes) -> tuple[dict[str, Any], dict[str, str] | None]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}, {"errorCode": "PARSE_ERROR", "errorDetails": "request body is not valid JSON"}
    context = body.get("context") if isinstance(body, dict) else None
    if not isinstance(context, dict):
        return {}, {"errorCode": "INVALID_CONTEXT", "errorDetails": "`context` must be an object"}
    target = context.get("targetingKey")
    if not isinstance(target, str) or not target:
        return {}, {
            "errorCode": "TARGETING_KEY_MISSING",
            "errorDetails": "context.targetingKey (the user id) is required",
        }
    return context, None


def _success(flag: Flag, profile: dict[str, Any]) -> dict[str, Any]:
    value, reason = flag.evaluate(profile)
    metadata: dict[str, Any] = {"known_user": profile["known"], "source": profile["source"]}
    variant = json.dumps(value) if isinstance(value, bool) else str(value)
    return {
        "key": flag.key,
        "value": value,
        "reason": reason,
        "variant": variant,
        "metadata": metadata,
    }
