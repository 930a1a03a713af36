"""File patterns of `sources.yml` (`files:`, `ignore:`): `**` any folders, `*` within a name,
`?` one character, matched on posix paths relative to the landing folder."""

from __future__ import annotations

import re

_GLOB_CACHE: dict[str, re.Pattern] = {}


def glob_regex(pattern: str) -> re.Pattern:
    """`**` any folders, `*` within a name, `?` one character; matched on posix paths."""
    if pattern not in _GLOB_CACHE:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            elif pattern.startswith("**", i):
                out.append(".*")
                i += 2
            elif pattern[i] == "*":
                out.append("[^/]*")
                i += 1
            elif pattern[i] == "?":
                out.append("[^/]")
                i += 1
            else:
                out.append(re.escape(pattern[i]))
                i += 1
        _GLOB_CACHE[pattern] = re.compile("^" + "".join(out) + "$")
    return _GLOB_CACHE[pattern]


def matches(path: str, patterns: tuple[str, ...] | list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        target = path if "/" in pattern else name
        if glob_regex(pattern).match(target):
            return True
    return False


def specificity(path: str, patterns: tuple[str, ...] | list[str]) -> int:
    """How specific the most specific of `patterns` matching `path` is (literal characters;
    -1: none matches). The source with the most specific match claims a file, so
    `mixpanel/engage/**` wins over `mixpanel/**` whatever the order in sources.yml."""
    name = path.rsplit("/", 1)[-1]
    best = -1
    for pattern in patterns:
        target = path if "/" in pattern else name
        if glob_regex(pattern).match(target):
            best = max(best, len(pattern.replace("*", "").replace("?", "")))
    return best
