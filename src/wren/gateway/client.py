"""What a model client needs to know about a gateway: is this base URL one, and release a program.

Both calls are synchronous (stdlib only), never raise, and are cheap to call per run: the answer
of `is_gateway` is cached per base URL.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request

log = logging.getLogger("wren.gateway")

PROGRAM_ID_HEADER = "X-Program-Id"

_cache: dict[str, bool] = {}
_lock = threading.Lock()


def gateway_root(api_base: str) -> str:
    """`http://host:port/v1` -> `http://host:port` (where the gateway's own endpoints live)."""
    return api_base.rstrip("/").removesuffix("/v1")


def is_gateway(api_base: str, timeout: float = 1.0) -> bool:
    """True if `api_base` (an OpenAI base URL) is a Wren gateway; cached per URL; never raises."""
    key = api_base.rstrip("/")
    with _lock:
        if key in _cache:
            return _cache[key]
    answer = False
    try:
        req = urllib.request.Request(
            gateway_root(api_base) + "/health", headers={"Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:  # a gateway with every backend down answers 503
            body = e.read()
        data = json.loads(body or b"null")
        answer = isinstance(data, dict) and data.get("gateway") == "wren"
    except Exception as e:  # anything at all: it is not a (reachable) gateway
        log.debug("is_gateway(%s): %s", api_base, e)
        answer = False
    with _lock:
        _cache[key] = answer
    return answer


def forget(api_base: str | None = None) -> None:
    """Drop cached answers (one URL, or all)."""
    with _lock:
        if api_base is None:
            _cache.clear()
        else:
            _cache.pop(api_base.rstrip("/"), None)


def release_program(api_base: str, program_id: str, timeout: float = 5.0, api_key: str | None = None) -> bool:
    """POST /programs/release for `program_id`; True if the gateway released it; never raises."""
    try:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        req = urllib.request.Request(
            gateway_root(api_base) + "/programs/release",
            data=json.dumps({"program_id": program_id}).encode(),
            headers=headers,
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except Exception as e:  # unknown program (404), gateway gone, timeout: nothing to do
        log.debug("release_program(%s, %s): %s", api_base, program_id, e)
        return False
