"""Keep credentials out of logs, reports and exception text.

requests/urllib3 exceptions can carry URLs and, in other clients, request data; anything we
surface goes through `redact` with the secrets of the destination that produced it.
"""

from __future__ import annotations

import base64
import re

_AUTH_HEADER = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer)\s+[A-Za-z0-9+/=._-]+"
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with Authorization headers, the given secrets and their Basic-auth encodings masked."""
    text = _AUTH_HEADER.sub(r"\1\2 ***", text)
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "***")
    return text


def basic_auth_token(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()
