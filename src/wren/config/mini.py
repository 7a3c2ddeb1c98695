"""mini-swe-agent configs as they are: detection and translation into Wren's config shape.

mini-swe-agent (2.x) keeps the observation and format-error templates and the action regex under
`model`, passes `model.model_kwargs` straight to LiteLLM, picks text or tool-call actions by
`model.model_class`, and names some limits differently. `translate` maps such a dict (already merged
the way mini-swe-agent merges its `-c` files) into Wren's sections. Every mini-swe-agent key either
maps, is recorded in `notes` (accepted, with why it needs nothing in Wren), or is named in one
ConfigError. Keys mini-swe-agent does not know pass through unchanged, so Wren's own validation
names any that Wren does not know either.

This module maps dicts to dicts only; it imports no agent, model or environment code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, meta

from wren.exceptions import ConfigError

FORMATS = ("auto", "wren", "mini")

# mini-swe-agent 2.4.6's defaults where Wren's differ, so that a translated config runs as it ran there.
_MINI_OBSERVATION_TEMPLATE = (
    "{% if output.exception_info %}<exception>{{output.exception_info}}</exception>\n{% endif %}"
    "<returncode>{{output.returncode}}</returncode>\n<output>\n{{output.output}}</output>"
)
_MINI_TOOLCALL_FORMAT_ERROR = "{{ error }}"
_MINI_TEXT_FORMAT_ERROR = (
    "Please always provide EXACTLY ONE action in triple backticks, found {{actions|length}} actions."
)
_MINI_TEXT_ACTION_REGEX = r"```mswea_bash_command\s*\n(.*?)\n```"
_MINI_AGENT_DEFAULTS = {"step_limit": 0, "cost_limit": 3.0, "wall_time_limit": 0, "max_format_errors": 3}
_MINI_ENV_TIMEOUT = 30

# model_class -> (Wren action_format, LiteLLM provider prefix for model_name, note)
_MODEL_CLASSES: dict[str, tuple[str, str, str]] = {
    "litellm": ("toolcall", "", ""),
    "litellm_textbased": ("text", "", ""),
    "litellm_response": (
        "toolcall",
        "",
        "model.model_class 'litellm_response': Wren sends the same messages over Chat Completions",
    ),
    "openrouter": ("toolcall", "openrouter/", ""),
    "openrouter_textbased": ("text", "openrouter/", ""),
    "openrouter_response": (
        "toolcall",
        "openrouter/",
        "model.model_class 'openrouter_response': Wren sends the same messages over Chat Completions",
    ),
}
_UNSUPPORTED_MODEL_CLASSES = {
    "portkey": "Portkey's SDK",
    "portkey_response": "Portkey's SDK",
    "requesty": "Requesty's API",
    "deterministic": "mini-swe-agent's test model (Wren's is model_class: scripted)",
}
_CLASS_PATHS = {
    "minisweagent.models.litellm_model.LitellmModel": "litellm",
    "minisweagent.models.litellm_textbased_model.LitellmTextbasedModel": "litellm_textbased",
    "minisweagent.models.litellm_response_model.LitellmResponseModel": "litellm_response",
    "minisweagent.models.openrouter_model.OpenRouterModel": "openrouter",
    "minisweagent.models.openrouter_textbased_model.OpenRouterTextbasedModel": "openrouter_textbased",
    "minisweagent.models.openrouter_response_model.OpenRouterResponseModel": "openrouter_response",
    "minisweagent.models.portkey_model.PortkeyModel": "portkey",
    "minisweagent.models.portkey_response_model.PortkeyResponseAPIModel": "portkey_response",
    "minisweagent.models.requesty_model.RequestyModel": "requesty",
    "minisweagent.models.test_models.DeterministicModel": "deterministic",
}

# model_kwargs that have a field of their own in Wren; the rest go into completion_kwargs unchanged.
_MODEL_KWARGS = {
    "api_base": "api_base",
    "base_url": "api_base",
    "api_key": "api_key",
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "timeout": "timeout",
    "extra_headers": "headers",
}

_ENV_CLASSES = {
    "local": "local",
    "docker": "docker",
    "singularity": "apptainer",
    "bubblewrap": "sandbox",
    "minisweagent.environments.local.LocalEnvironment": "local",
    "minisweagent.environments.docker.DockerEnvironment": "docker",
    "minisweagent.environments.singularity.SingularityEnvironment": "apptainer",
    "minisweagent.environments.extra.bubblewrap.BubblewrapEnvironment": "sandbox",
}
_UNSUPPORTED_ENV_CLASSES = ("swerex_docker", "swerex_modal", "contree")
# Settings of SWE-ReX's Modal environment (swebench_modal.yaml), unused by every other class.
_MODAL_KEYS = frozenset(
    {"startup_timeout", "runtime_timeout", "deployment_timeout", "install_pipx", "modal_sandbox_kwargs"}
)

# The keys of each section that mini-swe-agent 2.4.6 reads (for routing `-c key=value` overrides).
MINI_KEYS: dict[str, frozenset[str]] = {
    "agent": frozenset(
        {
            "system_template",
            "instance_template",
            "step_limit",
            "cost_limit",
            "wall_time_limit_seconds",
            "max_consecutive_format_errors",
            "output_path",
            "agent_class",
            "mode",
            "whitelist_actions",
            "confirm_exit",
        }
    ),
    "model": frozenset(
        {
            "model_name",
            "model_class",
            "model_kwargs",
            "litellm_model_registry",
            "set_cache_control",
            "cost_tracking",
            "format_error_template",
            "observation_template",
            "action_regex",
            "multimodal_regex",
            "provider",
        }
    ),
    "environment": frozenset(
        {
            "environment_class",
            "cwd",
            "env",
            "timeout",
            "forward_env",
            "image",
            "executable",
            "run_args",
            "container_timeout",
            "pull_timeout",
            "interpreter",
            "global_args",
            "exec_args",
            "sandbox_build_retries",
            "wrapper_args",
            *_MODAL_KEYS,
        }
    ),
    "run": frozenset({"task", "env_startup_command"}),
}
# Keys only mini-swe-agent has: one of them in a file makes it a mini-swe-agent config.
_MINI_ONLY: dict[str, frozenset[str]] = {
    "agent": frozenset(
        {"wall_time_limit_seconds", "max_consecutive_format_errors", "output_path", "agent_class"}
    ),
    "model": MINI_KEYS["model"] - {"model_class"},
    "environment": frozenset(
        {
            "interpreter",
            "container_timeout",
            "pull_timeout",
            "global_args",
            "sandbox_build_retries",
            "wrapper_args",
            *_MODAL_KEYS,
        }
    ),
    "run": MINI_KEYS["run"],
}

# Template variables mini-swe-agent has under another name in Wren, defined at the top of a template
# that uses them: `{% set %}` prints nothing, so the rendered text is unchanged.
_TEMPLATE_ALIASES = {
    "n_model_calls": "n_steps",
    "model_cost": "cost",
    "wall_time_limit_seconds": "wall_time_limit",
    "max_consecutive_format_errors": "max_format_errors",
    "model_name": "name",
}
_OBSERVATION = (
    '{% set output = {"output": output, "returncode": returncode, '
    '"exception_info": exception_info if exception_info is defined else ""} %}'
)
# mini-swe-agent renders a timeout through the observation template, as a failed command.
_TIMEOUT = (
    '{% set output = {"output": output, "returncode": -1, "exception_info": '
    '"An error occurred while executing the command: Command \'" ~ action ~ "\' timed out after " '
    '~ timeout ~ " seconds"} %}'
)


@dataclass
class Translation:
    """A config in Wren's shape, and what was accepted without a Wren counterpart."""

    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {name!r} must be a mapping, not {type(value).__name__}")
    return dict(value)


def shipped_config(name: str) -> Path | None:
    """The config mini-swe-agent ships under `name` (`swebench`, `mini.yaml`), looked up as it does.

    None when there is none or mini-swe-agent is not installed. The package is located, not imported
    (importing it prints a banner and reads its global .env).
    """
    import importlib.util

    if "/" in name or "\\" in name:
        return None
    spec = importlib.util.find_spec("minisweagent")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "config"
    file = name if name.endswith(".yaml") else f"{name}.yaml"
    for folder in (root, root / "extra", root / "benchmarks"):
        if (folder / file).is_file():
            return folder / file
    return None


def is_mini_config(data: Mapping[str, Any]) -> bool:
    """Whether `data` has a key that only mini-swe-agent's configs have."""
    for section, keys in _MINI_ONLY.items():
        value = data.get(section)
        if isinstance(value, Mapping) and keys & set(value):
            return True
    model = data.get("model")
    model_class = model.get("model_class") if isinstance(model, Mapping) else None
    return isinstance(model_class, str) and _CLASS_PATHS.get(model_class, model_class) in (
        set(_MODEL_CLASSES) | set(_UNSUPPORTED_MODEL_CLASSES)
    ) - {"litellm"}


def is_mini_key(path: str) -> bool:
    """Whether a dotted override key (`model.model_kwargs.temperature`) is one mini-swe-agent reads."""
    parts = path.strip().split(".")
    return len(parts) >= 2 and parts[1] in MINI_KEYS.get(parts[0], frozenset())


def is_mini_only_key(path: str) -> bool:
    """Whether a dotted override key names a key that only mini-swe-agent has (`model.model_kwargs...`)."""
    parts = path.strip().split(".")
    return len(parts) >= 2 and parts[1] in _MINI_ONLY.get(parts[0], frozenset())


def _aliased(template: str, key: str, prelude: str = "") -> str:
    """`template` (the value of `key`) with the mini-swe-agent variables it uses defined from Wren's."""
    try:
        used = meta.find_undeclared_variables(Environment().parse(template))
    except TemplateSyntaxError as e:
        raise ConfigError(f"config key {key!r}: the template does not parse: {e}") from None
    sets = "".join(f"{{% set {mini} = {wren} %}}" for mini, wren in _TEMPLATE_ALIASES.items() if mini in used)
    return sets + (prelude if "output" in used else "") + template


class _Translator:
    def __init__(self, data: Mapping[str, Any], *, interactive: bool):
        self.data = data
        self.interactive = interactive
        self.out: dict[str, Any] = {}
        self.notes: list[str] = []
        self.errors: list[str] = []

    def put(self, section: str, key: str, value: Any) -> None:
        self.out.setdefault(section, {})[key] = value

    def error(self, key: str, why: str) -> None:
        self.errors.append(f"mini-swe-agent config key {key!r}: {why}")

    def run(self) -> Translation:
        unknown = set(self.data) - {"agent", "model", "environment", "run"}
        for key in sorted(unknown):  # Wren's own top-level sections (slm_providers, bench) pass through
            self.out[key] = self.data[key]
        self.model(_section(self.data, "model"))
        self.agent(_section(self.data, "agent"))
        self.environment(_section(self.data, "environment"))
        self.run_section(_section(self.data, "run"))
        if self.errors:
            raise ConfigError("; ".join(self.errors))
        return Translation(self.out, self.notes)

    # -- agent ----------------------------------------------------------------------------------
    def agent(self, agent: dict[str, Any]) -> None:
        for key, value in _MINI_AGENT_DEFAULTS.items():
            self.put("agent", key, value)
        renames = {
            "wall_time_limit_seconds": "wall_time_limit",
            "max_consecutive_format_errors": "max_format_errors",
        }
        for key, value in agent.items():
            if key in ("system_template", "instance_template"):
                self.put("agent", key, _aliased(str(value), f"agent.{key}"))
            elif key in renames:
                self.put("agent", renames[key], value)
            elif key == "output_path":
                self.put("run", "output", str(value) if value is not None else None)
            elif key == "agent_class":
                self.agent_class(str(value or ""))
            elif key in ("mode", "whitelist_actions", "confirm_exit") and not self.interactive:
                self.notes.append(f"agent.{key}: a batch run asks nothing, so it does not apply")
            else:  # step_limit, cost_limit, mode, ... and Wren's own agent keys
                self.put("agent", key, value)

    def agent_class(self, name: str) -> None:
        short = name.rsplit(".", 1)[-1]
        if name in ("", "default", "interactive") or short in ("DefaultAgent", "InteractiveAgent"):
            self.notes.append(
                f"agent.agent_class {name!r}: the command picks the agent (wren run: interactive, wren batch: default)"
            )
        else:
            self.error("agent.agent_class", f"{name!r} is mini-swe-agent code; allowed: default, interactive")

    # -- model ----------------------------------------------------------------------------------
    def model(self, model: dict[str, Any]) -> None:
        raw_class = str(model.get("model_class") or "litellm")
        model_class = _CLASS_PATHS.get(raw_class, raw_class)
        if model_class in _UNSUPPORTED_MODEL_CLASSES:
            self.error(
                "model.model_class",
                f"{raw_class!r} uses {_UNSUPPORTED_MODEL_CLASSES[model_class]}, which Wren does not; "
                f"allowed: {', '.join(_MODEL_CLASSES)}",
            )
            return
        if model_class not in _MODEL_CLASSES:
            self.error("model.model_class", f"unknown {raw_class!r}; allowed: {', '.join(_MODEL_CLASSES)}")
            return
        action_format, prefix, note = _MODEL_CLASSES[model_class]
        if note:
            self.notes.append(note)
        text = action_format == "text"
        self.put("agent", "action_format", action_format)
        # mini-swe-agent sends no sampling settings of its own; Wren's default would send temperature 0.
        self.put("model", "temperature", None)
        self.put(
            "agent",
            "action_observation_template",
            _aliased(_MINI_OBSERVATION_TEMPLATE, "model.observation_template", _OBSERVATION),
        )
        self.put(
            "agent",
            "timeout_template",
            _aliased(_MINI_OBSERVATION_TEMPLATE, "model.observation_template", _TIMEOUT),
        )
        self.put(
            "agent", "format_error_template", _MINI_TEXT_FORMAT_ERROR if text else _MINI_TOOLCALL_FORMAT_ERROR
        )
        if text:
            self.put("agent", "action_regex", _MINI_TEXT_ACTION_REGEX)
        passthrough: dict[str, Any] = {}
        for key, value in model.items():
            if key == "model_class":
                continue
            if key == "model_name":
                name = str(value or "")
                self.put("model", "name", prefix + name if prefix and not name.startswith(prefix) else name)
            elif key == "model_kwargs":
                self.model_kwargs(value or {})
            elif key == "observation_template":
                self.put(
                    "agent",
                    "action_observation_template",
                    _aliased(str(value), "model.observation_template", _OBSERVATION),
                )
                self.put(
                    "agent", "timeout_template", _aliased(str(value), "model.observation_template", _TIMEOUT)
                )
            elif key == "format_error_template":
                self.put(
                    "agent", "format_error_template", _aliased(str(value), "model.format_error_template")
                )
            elif key == "action_regex":
                if not text:
                    self.notes.append(
                        f"model.action_regex: used only with a text-based model_class, not {model_class!r} "
                        "(as in mini-swe-agent)"
                    )
                self.put("agent", "action_regex", str(value))
            elif key == "multimodal_regex":
                if value:
                    self.error("model.multimodal_regex", "Wren sends text only; allowed: ''")
            elif key == "set_cache_control":
                if value:
                    self.notes.append(
                        f"model.set_cache_control {value!r}: Wren sets no cache-control markers"
                    )
            elif key == "cost_tracking":
                self.notes.append(
                    f"model.cost_tracking {value!r}: Wren records $0 for a model without a price, never fails"
                )
            elif key == "litellm_model_registry":
                self.registry(value, model.get("model_name"))
            elif key == "provider":  # the class check above already refused Portkey itself
                self.notes.append(
                    f"model.provider: a Portkey setting, unused by model_class {model_class!r} (as in mini-swe-agent)"
                )
            else:  # Wren's own model keys (api_base, ...) given in a mini-swe-agent file
                passthrough[key] = value
        for key, value in passthrough.items():
            self.put("model", key, value)

    def model_kwargs(self, kwargs: Any) -> None:
        if not isinstance(kwargs, Mapping):
            self.error("model.model_kwargs", f"must be a mapping, not {type(kwargs).__name__}")
            return
        extra: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in _MODEL_KWARGS:
                self.put("model", _MODEL_KWARGS[key], value)
            elif key == "drop_params":
                if value:
                    self.notes.append("model.model_kwargs.drop_params: Wren always drops unsupported params")
                else:
                    self.error(
                        "model.model_kwargs.drop_params",
                        "Wren always drops unsupported params; allowed: true",
                    )
            elif key == "num_retries":
                self.put("model", "retries", int(value) + 1)  # LiteLLM counts retries, Wren attempts
            else:  # extra_body, stop, seed, parallel_tool_calls, reasoning_effort, ...: sent as given
                extra[key] = value
        if extra:
            current = self.out.get("model", {}).get("completion_kwargs", {})
            self.put("model", "completion_kwargs", {**current, **extra})

    def registry(self, path: Any, model_name: Any) -> None:
        if not path:
            return
        try:
            entries = json.loads(Path(str(path)).read_text())
        except (OSError, json.JSONDecodeError) as e:
            self.error("model.litellm_model_registry", f"cannot read {path}: {e}")
            return
        entry = entries.get(str(model_name)) if isinstance(entries, dict) else None
        if not isinstance(entry, dict):
            self.error("model.litellm_model_registry", f"{path} has no entry for model {model_name!r}")
            return
        for key in ("input_cost_per_token", "output_cost_per_token"):
            if key in entry:
                self.put("model", key, entry[key])
        if "max_input_tokens" in entry:
            self.put("model", "max_input_tokens", entry["max_input_tokens"])

    # -- environment ----------------------------------------------------------------------------
    def environment(self, env: dict[str, Any]) -> None:
        raw_class = str(env.get("environment_class") or "local")
        if raw_class in _UNSUPPORTED_ENV_CLASSES or raw_class.rsplit(".", 1)[-1].lower().startswith(
            ("swerex", "contree")
        ):
            self.error(
                "environment.environment_class",
                f"{raw_class!r} has no Wren counterpart; allowed: local, docker, singularity, bubblewrap "
                "(and Wren's own: podman, apptainer, sandbox)",
            )
            return
        kind = _ENV_CLASSES.get(raw_class, raw_class)
        self.put("environment", "environment_class", kind)
        self.put("environment", "timeout", _MINI_ENV_TIMEOUT)
        for key, value in env.items():
            if key == "environment_class":
                continue
            if key == "interpreter":
                self.interpreter(value)
            elif key == "container_timeout":
                self.notes.append(
                    f"environment.container_timeout {value!r}: Wren removes the container when the run ends"
                )
            elif key == "pull_timeout":
                self.put("environment", "start_timeout", value)
            elif key == "run_args":
                args = [str(a) for a in value or []]
                if "--rm" in args:
                    self.notes.append("environment.run_args '--rm': Wren always removes its containers")
                self.put("environment", "run_args", [a for a in args if a != "--rm"])
            elif key == "global_args":
                if list(value or []) not in ([], ["--quiet"]):
                    self.error("environment.global_args", "Wren runs apptainer quietly; allowed: ['--quiet']")
            elif key == "sandbox_build_retries":
                self.notes.append(
                    "environment.sandbox_build_retries: Wren runs the image without building a sandbox"
                )
            elif key in _MODAL_KEYS:
                self.notes.append(
                    f"environment.{key}: a swerex_modal setting, unused by environment_class {raw_class!r} "
                    "(as in mini-swe-agent)"
                )
            elif key == "wrapper_args":
                self.error(
                    "environment.wrapper_args",
                    "Wren builds the bubblewrap arguments itself; use environment.extra_args and environment.writable",
                )
            else:  # cwd, env, timeout, forward_env, image, executable, exec_args and Wren's own keys
                self.put("environment", key, value)

    def interpreter(self, value: Any) -> None:
        argv = [str(a) for a in value or []]
        if len(argv) == 2 and argv[1] == "-c":
            self.put("environment", "shell", argv[0])
        else:
            self.error(
                "environment.interpreter",
                f"{argv!r}: Wren runs [SHELL, '-c', command]; allowed: [SHELL, '-c']",
            )

    # -- run ------------------------------------------------------------------------------------
    def run_section(self, run: dict[str, Any]) -> None:
        for key, value in run.items():
            if key == "task":
                self.error("run.task", "give the task with `wren run -t TASK`")
            elif key == "env_startup_command":
                self.error(
                    "run.env_startup_command", "Wren's workspace sets instances up (see docs/batch.md)"
                )
            else:
                self.put("run", key, value)


def translate(data: Mapping[str, Any], *, interactive: bool = True) -> Translation:
    """A mini-swe-agent config (its `-c` files already merged) in Wren's shape.

    `interactive` is false for batch runs, where the interactive agent keys do not apply.
    """
    return _Translator(data, interactive=interactive).run()
