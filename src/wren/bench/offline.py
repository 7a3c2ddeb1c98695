"""Telling tests that failed for want of a network from tests that failed: a failure whose error
shows name resolution failing or a network unreachable is `needs network`; so is a refused or failed
connection, unless the address it names is a local one (a test's own local server refusing is the
test's failure). Only the failure's error lines are read (pytest's `E` lines), not the rest of its
report: a local address in a captured environment variable or another request says nothing."""

from __future__ import annotations

import re

NETWORK_SIGNS = re.compile(
    r"Temporary failure in name resolution|Name or service not known|nodename nor servname|"
    r"No address associated with hostname|socket\.gaierror|gaierror|getaddrinfo failed|"
    r"Network is unreachable|Could not resolve host|No route to host"
)
REFUSED_SIGNS = re.compile(
    r"ConnectionRefusedError|Connection refused|NewConnectionError|Failed to establish a new connection|"
    r"Max retries exceeded with url|urlopen error|ConnectTimeoutError"
)
_LOCAL_HOST = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\]|0\.0\.0\.0)$")
# Where an error names the address it tried: urllib3's host='...', a URL, a (host, port) pair,
# an IPv4 address, host:port.
_HOSTS = re.compile(
    r"host=['\"]([^'\"]+)['\"]|[a-z]+://([^/:'\"\s]+|\[[0-9a-f:]+\])|\(['\"]([^'\"]+)['\"], \d+\)|"
    r"\b(\d{1,3}(?:\.\d{1,3}){3})\b|\b(localhost|[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.[a-z]{2,}):\d+\b"
)
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


def _error_lines(body: str) -> str:
    """A failure's error lines (pytest's `E   ...`); the whole body for other runners' reports."""
    lines = [line[1:].strip() for line in body.splitlines() if line.startswith("E ")]
    return "\n".join(lines) if lines else body


def _refused_elsewhere(error: str) -> bool:
    """A refused or failed connection to an address that is not local (or to none it names)."""
    lines = [line for line in error.splitlines() if REFUSED_SIGNS.search(line)]
    if not lines:
        return False
    hosts = [next(h for h in m.groups() if h) for m in _HOSTS.finditer(error)]
    return not hosts or any(not _LOCAL_HOST.match(h) for h in hosts)


def needing_network(output: str, failing: list[str]) -> list[str]:
    """The failing tests whose failure shows the network was needed."""
    found = []
    for header, body in _sections(output):
        error = _error_lines(body)
        if not (NETWORK_SIGNS.search(error) or _refused_elsewhere(error)):
            continue
        found += [t for t in failing if t not in found and _matches(t, header)]
    return found
