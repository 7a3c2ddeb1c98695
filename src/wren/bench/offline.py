"""Telling tests that failed for want of a network from tests that failed: a failure whose report
shows name resolution failing or a connection refused or unreachable is `needs network`."""

from __future__ import annotations

import re

NETWORK_SIGNS = re.compile(
    r"Temporary failure in name resolution|Name or service not known|nodename nor servname|"
    r"No address associated with hostname|socket\.gaierror|gaierror|getaddrinfo failed|"
    r"Network is unreachable|Could not resolve host|No route to host"
)
# Refused or failed connections count only when no local address is involved: a test's own local
# server refusing is the test's failure.
REFUSED_SIGNS = re.compile(
    r"ConnectionRefusedError|Connection refused|NewConnectionError|Failed to establish a new connection|"
    r"Max retries exceeded with url|urlopen error|ConnectTimeoutError"
)
_LOCAL = re.compile(r"127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0")
# pytest's section headers: "____ test_name ____", "____ ERROR collecting path ____", "____ Class.test ____".
_HEADER = re.compile(r"^_{3,} (.+?) _{3,}$", flags=re.MULTILINE)


def _sections(output: str) -> list[tuple[str, str]]:
    heads = list(_HEADER.finditer(output))
    out = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(output)
        out.append((head.group(1).strip(), output[head.end() : end]))
    return out


def _matches(node_id: str, header: str) -> bool:
    header = header.removeprefix("ERROR collecting ").removeprefix("ERROR at setup of ")
    if "/" in header or header.endswith(".py"):
        return node_id.split("::")[0] == header or node_id.startswith(header + "::")
    return ("." + node_id.replace("::", ".")).endswith("." + header)


def needing_network(output: str, failing: list[str]) -> list[str]:
    """The failing tests whose failure report shows the network was needed."""
    found = []
    for header, body in _sections(output):
        if not (NETWORK_SIGNS.search(body) or (REFUSED_SIGNS.search(body) and not _LOCAL.search(body))):
            continue
        found += [t for t in failing if t not in found and _matches(t, header)]
    return found
