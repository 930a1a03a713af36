"""`session.*` values in rules: what the user is doing in the current session. They exist
only intraday (the realtime consumer fills them as events arrive; a session ends after 30
minutes without events), so only `realtime: true` segments and triggers may read them. In the
daily run they are null, which makes such a condition false: the daily result, which wins,
drops session-based memberships once the session is over.

The rule language has no attribute access, so `session.events` is rewritten to the column
`session__events` before the rule compiler sees it."""

from __future__ import annotations

import re

SESSION_COLUMNS = {
    "session__events": "BIGINT",  # events in the current session, this one included
    # minutes from the session's first event to its latest (in the consumer's periodic sweep:
    # to now, while the session is open; null once it ended)
    "session__minutes": "DOUBLE",
}
_REFERENCE = re.compile(r"\bsession\.([A-Za-z_][A-Za-z0-9_]*)")


class SessionFieldError(ValueError):
    pass


def rewrite(text: str) -> str:
    """`session.x` -> `session__x`; an unknown session field is an error naming the known."""

    def replace(match: re.Match) -> str:
        column = f"session__{match.group(1)}"
        if column not in SESSION_COLUMNS:
            known = ", ".join(f"session.{c[9:]}" for c in SESSION_COLUMNS)
            raise SessionFieldError(f"unknown session value `{match.group(0)}`; known: {known}")
        return column

    return _REFERENCE.sub(replace, text) if isinstance(text, str) else text


def uses_session(columns: tuple[str, ...]) -> bool:
    return any(c in SESSION_COLUMNS for c in columns)
