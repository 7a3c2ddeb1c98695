"""The gateway's scheduling policies by name: what `--policy` accepts.

Names map to `module:Class` strings, so that validating a config imports no policy code; the
scheduler resolves a name to its class (`wren.gateway.scheduler.get_policy_class`).
"""

from __future__ import annotations

from wren.registry import Registry

_SCHEDULER = "wren.gateway.scheduler:"

DEFAULT_POLICY = "program"
"""The policy a gateway runs unless told otherwise: the one that leads on the scheduling benchmark."""

POLICIES: Registry = Registry(
    "policy",
    {
        "program": _SCHEDULER + "ProgramPolicy",
        "program-ttl": _SCHEDULER + "ProgramTTLPolicy",
        "program-fcfs": _SCHEDULER + "ProgramFCFSPolicy",
        "program-las": _SCHEDULER + "ProgramLASPolicy",
        "program-ttl-fcfs": _SCHEDULER + "ProgramTTLFCFSPolicy",
        "program-ttl-las": _SCHEDULER + "ProgramTTLLASPolicy",
        "round-robin": _SCHEDULER + "RoundRobinPolicy",
        "least-loaded": _SCHEDULER + "LeastLoadedPolicy",
    },
)
