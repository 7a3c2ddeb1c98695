"""One registry helper for every component family: short names, both dotted spellings, one error shape."""

from __future__ import annotations

import pytest

from wren.environments import ENVIRONMENTS, get_environment
from wren.environments.local import LocalEnvironment
from wren.exceptions import ConfigError
from wren.gateway.scheduler import POLICIES, Policy, RoundRobinPolicy, get_policy_class
from wren.models import MODEL_CLASSES, get_model
from wren.models.scripted import ScriptedModel
from wren.registry import Registry
from wren.synth.mutators import MUTATORS, FlipComparison, get_mutator
from wren.validation import validate

FAMILIES = [
    # registry, config key, a short name, its class, a misspelt name and the suggestion
    (MODEL_CLASSES, "model_class", "scripted", ScriptedModel, "scriptd", "scripted"),
    (ENVIRONMENTS, "environment", "local", LocalEnvironment, "lokal", "local"),
    (POLICIES, "policy", "round-robin", RoundRobinPolicy, "round-robbin", "round-robin"),
    (MUTATORS, "mutator", "flip_comparison", FlipComparison, "flip_comparisn", "flip_comparison"),
]


@pytest.mark.parametrize(("registry", "key", "name", "cls", "typo", "suggestion"), FAMILIES)
def test_every_family_resolves_names_and_dotted_paths_alike(registry, key, name, cls, typo, suggestion):
    assert isinstance(registry, Registry) and registry.key == key
    assert registry.get(name) is cls
    assert registry.get(f"{cls.__module__}:{cls.__name__}") is cls
    assert registry.get(f"{cls.__module__}.{cls.__name__}") is cls
    with pytest.raises(ConfigError) as error:
        registry.get(typo)
    message = str(error.value)
    assert message.startswith(f"unknown {key} {typo!r} (did you mean {suggestion!r}?); known: ")
    assert all(known in message for known in registry.names()) and "dotted path" in message
    with pytest.raises(ConfigError, match=f"cannot load {key} 'no_such_module.Thing'"):
        registry.get("no_such_module.Thing")


def test_a_class_of_the_wrong_kind_is_refused():
    with pytest.raises(
        ConfigError, match="policy 'pathlib.Path' is not a wren.gateway.scheduler.Policy class"
    ):
        get_policy_class("pathlib.Path")
    with pytest.raises(ConfigError, match="is not a wren.synth.mutators.Mutator class"):
        get_mutator("pathlib:Path")
    assert issubclass(get_policy_class("wren.gateway.scheduler:ProgramPolicy"), Policy)


def test_the_builders_go_through_the_registries():
    assert isinstance(get_model({"model_class": "scripted", "name": "x"}), ScriptedModel)
    assert isinstance(get_environment("wren.environments.local:LocalEnvironment"), LocalEnvironment)
    with pytest.raises(ConfigError, match="unknown model_class 'litelm' \\(did you mean 'litellm'\\?\\)"):
        get_model({"model_class": "litelm", "name": "x"})


def test_a_config_value_is_checked_against_its_registry():
    from wren.gateway.config import GatewayConfig

    with pytest.raises(ConfigError, match="gateway.policy.*unknown policy 'fastest'; known: least-loaded"):
        validate(GatewayConfig, {"backends": ["http://127.0.0.1:1"], "policy": "fastest"}, where="gateway")
    assert validate(GatewayConfig, {"backends": ["http://127.0.0.1:1"], "policy": "my.mod:Policy"}).policy


def test_validation_names_the_key_and_suggests_the_closest():
    from wren.agents.config import AgentConfig

    with pytest.raises(
        ConfigError, match="unknown config key 'agent.step_limt' \\(did you mean 'step_limit'\\?\\)"
    ):
        validate(AgentConfig, {"step_limt": 3}, where="agent")
