"""Wren never reaches for the network on its own: a LiteLLM call to a local server makes no other
connection (LiteLLM fetches its price table from GitHub on import unless told not to)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import wren

# Runs in a fresh interpreter: every resolve or connect beyond loopback is recorded and refused.
PROBE = r"""
import ipaddress, socket
attempts = []
def outside(host):
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"
real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
def getaddrinfo(host, *a, **k):
    if host and outside(str(host)):
        attempts.append(f"resolve {host}")
        raise socket.gaierror(-2, "offline")
    return real_getaddrinfo(host, *a, **k)
def connect(self, addr):
    if isinstance(addr, tuple) and outside(str(addr[0])):
        attempts.append(f"connect {addr}")
        raise OSError(101, "offline")
    return real_connect(self, addr)
socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
from tests.peers.openai_server import ScriptedOpenAIServer
from wren.models import get_model
with ScriptedOpenAIServer(["hello"]) as server:
    model = get_model({"name": "openai/scripted-model", "api_base": server.url, "client": "litellm"})
    model.query([{"role": "user", "content": "hi"}])
print("ATTEMPTS", attempts)
"""


def test_a_litellm_call_to_a_local_server_makes_no_outside_connection():
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ATTEMPTS []" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_litellm_is_imported_only_through_import_litellm():
    """The one place that tells LiteLLM to use its bundled price table before importing it."""
    src = Path(wren.__file__).parent
    sites = []
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "litellm" or n.startswith("litellm.") for n in names):
                sites.append(f"{path.relative_to(src)}:{node.lineno}")
    assert len(sites) == 1 and sites[0].startswith("models/litellm_model.py:"), sites
