from __future__ import annotations

import threading

import pytest

from tests.conftest import SUBMIT, bash
from wren import DefaultAgent
from wren.agents.config import AgentConfig
from wren.agents.repeats import repeated_steps
from wren.config.loader import read_yaml, validate
from wren.environments import get_environment
from wren.environments.local import LocalEnvironment
from wren.exceptions import ConfigError
from wren.models import GLOBAL_STATS, get_model
from wren.models.scripted import ScriptedModel


def agent_for(outputs, tmp_path, cost_per_call=0.0, **kwargs):
    model = ScriptedModel(outputs=outputs, cost_per_call=cost_per_call)
    return DefaultAgent(
        model, get_environment("local", cwd=str(tmp_path), timeout=kwargs.pop("timeout", 30)), **kwargs
    )


def test_fixes_a_planted_bug_through_a_real_http_model(buggy_repo, scripted_server):
    server = scripted_server(
        [
            bash("cat calc.py"),
            bash("sed -i 's/a - b/a + b/' calc.py"),
            bash("python3 -m pytest -q test_calc.py || python3 -c 'import calc; assert calc.add(2,3)==5'"),
            SUBMIT,
        ]
    )
    model = get_model({"name": "openai/scripted", "api_base": server.url, "api_key": "k"})
    result = DefaultAgent(
        model, get_environment("local", cwd=str(buggy_repo)), step_limit=10, cost_limit=1
    ).run("Fix add()")
    assert result.exit_status == "Submitted" and result["exit_status"] == "Submitted"
    assert "+    return a + b" in result.submission
    assert result.n_steps == 4
    # A step: query, one action, observation appended; the exit message closes the history.
    roles = [m["role"] for m in result.messages]
    assert roles == ["system", "user"] + ["assistant", "user"] * 3 + ["assistant", "exit"]
    assert "return a - b" in result.messages[3]["content"]


def test_format_errors_go_back_to_the_model_and_repeated_ones_end_the_run(tmp_path):
    result = agent_for(
        ["no action here", bash("echo fine"), *["still nothing"] * 3], tmp_path, max_format_errors=3
    ).run("t")
    assert result.exit_status == "LimitsExceeded"
    feedback = [m["content"] for m in result.messages if m["role"] == "user"][1]
    assert "Format error: found no bash code blocks" in feedback
    assert result.n_steps == 5  # the clean step in between reset the count


def test_a_command_repeated_with_the_same_output_ends_the_run(tmp_path):
    # Same command, same output, three times: stuck; the run ends before a fourth model call.
    (tmp_path / "f.txt").write_text("same\n")
    steps = [bash("cat f.txt")] * 3 + [SUBMIT]
    result = agent_for(steps, tmp_path, max_repeats=3).run("t")
    assert result.exit_status == "LimitsExceeded" and result.n_steps == 3
    assert "the same command gave the same output 3 times in a row" in result.messages[-1]["content"]


def test_a_rerun_that_differs_only_in_its_timing_is_a_repeat(tmp_path):
    # A test runner prints how long it took ("1 failed in 0.12s", a clock time, an address): the
    # same failing run three times is stuck although no two outputs are equal byte for byte.
    script = (
        "import time; t = time.perf_counter_ns(); "
        "print(f'FAILED test_x.py::test_a - 1 failed in {t % 10**7 / 1000:.3f}s at "
        "{t % 24:02d}:{t % 60:02d}:{t % 59:02d} <object at {hex(t | 1 << 40)}>')"
    )
    steps = [bash(f'python3 -c "{script}"')] * 3 + [SUBMIT]
    result = agent_for(steps, tmp_path, max_repeats=3).run("t")
    outputs = [m["content"] for m in result.messages if m["role"] == "user"][1:]
    assert len(set(outputs)) == 3  # really different text each time
    assert result.exit_status == "LimitsExceeded" and result.n_steps == 3


def test_a_repeated_command_whose_output_changes_is_not_stuck(tmp_path):
    # The same command, but each run appends to the file it prints: progress, not a loop. A format
    # error between two identical steps also breaks the chain.
    steps = [bash("echo x >> log.txt; wc -l < log.txt")] * 4 + [
        bash("echo a"),
        "no action",
        bash("echo a"),
        SUBMIT,
    ]
    result = agent_for(steps, tmp_path, max_repeats=2).run("t")
    assert result.exit_status == "Submitted" and result.n_steps == 8


def test_repeated_steps_is_read_from_the_messages():
    step = [{"role": "assistant", "content": bash("ls")}, {"role": "user", "content": "a"}]
    other = [{"role": "assistant", "content": bash("ls")}, {"role": "user", "content": "b"}]
    assert repeated_steps([]) == 0
    assert repeated_steps(step * 3) == 3
    assert repeated_steps(other + step * 2) == 2
    assert (
        repeated_steps(
            step + [{"role": "assistant", "content": "no block"}, {"role": "user", "content": "a"}]
        )
        == 0
    )


def test_timeout_is_reported_to_the_model(tmp_path):
    result = agent_for([bash("echo partial; sleep 30"), SUBMIT], tmp_path, timeout=1).run("t")
    assert result.exit_status == "Submitted"
    timeout_message = result.messages[3]["content"]
    assert "timed out after 1 seconds" in timeout_message and "partial" in timeout_message


def test_step_limit(tmp_path):
    result = agent_for([bash("true")] * 10, tmp_path, step_limit=3).run("t")
    assert (result.exit_status, result.n_steps) == ("LimitsExceeded", 3)
    assert "step limit 3" in result.messages[-1]["extra"]["reason"]


def test_cost_limit(tmp_path):
    result = agent_for([bash("true")] * 10, tmp_path, cost_per_call=0.4, cost_limit=1.0).run("t")
    assert (result.exit_status, result.n_steps) == ("LimitsExceeded", 3)


def test_wall_time_limit(tmp_path):
    result = agent_for([bash("sleep 0.4")] * 10, tmp_path, wall_time_limit=0.5).run("t")
    assert result.exit_status == "LimitsExceeded" and result.n_steps <= 3


def test_net_cost_limit_is_shared_by_runs_in_threads(tmp_path):
    GLOBAL_STATS.reset()
    results = []

    def one():
        results.append(
            agent_for([bash("true")] * 50, tmp_path, cost_per_call=0.1, cost_limit=0, net_cost_limit=1.0).run(
                "t"
            )
        )

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total_steps = sum(r.n_steps for r in results)
    assert all(r.exit_status == "LimitsExceeded" for r in results)
    # Each run may take the one call in flight when the total crossed the limit.
    assert 10 <= total_steps <= 10 + 4
    assert GLOBAL_STATS.cost == pytest.approx(total_steps * 0.1)


def test_legacy_submit_marker_and_submission_is_the_rest_of_output(tmp_path):
    result = agent_for([bash("echo MINI_SWE_AGENT_FINAL_OUTPUT; echo line1; echo line2")], tmp_path).run("t")
    assert (result.exit_status, result.submission) == ("Submitted", "line1\nline2\n")


def test_model_error_ends_the_run_with_its_name(tmp_path):
    result = agent_for([bash("true")], tmp_path).run("t")
    assert result.exit_status == "ModelError" and "no output left" in result.messages[-1]["content"]


def test_long_output_shows_head_tail_and_elided_count(tmp_path):
    result = agent_for([bash("python3 -c \"print('a'*20000 + 'END')\""), SUBMIT], tmp_path).run("t")
    observation = result.messages[3]["content"]
    assert "characters elided" in observation and "END" in observation and len(observation) < 12000


def test_undefined_template_variable_is_an_error(tmp_path):
    agent = agent_for([SUBMIT], tmp_path, instance_template="{{ task }} {{ no_such_variable }}")
    with pytest.raises(Exception, match="no_such_variable"):
        agent.run("t")


def test_template_variables_include_limits_and_environment(tmp_path):
    template = "{{ task }}|{{ step_limit }}|{{ cost_limit }}|{{ net_cost_limit }}|{{ cwd }}|{{ name }}"
    result = agent_for([SUBMIT], tmp_path, step_limit=9, instance_template=template).run("T")
    assert result.messages[1]["content"] == f"T|9|3.0|0.0|{tmp_path}|scripted"


def test_toolcall_mode_answers_each_tool_call(tmp_path):
    from wren.config.loader import load_config_dict

    agent_cfg = load_config_dict(["toolcall"], environ={})["agent"]
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "bash", "arguments": '{"command": "echo hi"}'},
    }
    two = [call, {**call, "id": "c2"}]
    outputs = [
        {"tool_calls": [call]},
        {"tool_calls": two},
        {
            "tool_calls": [
                {
                    **call,
                    "function": {
                        "name": "bash",
                        "arguments": '{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}',
                    },
                }
            ]
        },
    ]
    result = agent_for(outputs, tmp_path, **agent_cfg).run("t")
    assert result.exit_status == "Submitted"
    tool_messages = [m for m in result.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["c1", "c1", "c2"]
    assert "hi" in tool_messages[0]["content"] and "found 2 tool calls" in tool_messages[1]["content"]


def test_unknown_agent_option_is_an_error(tmp_path):
    from wren.exceptions import ConfigError

    with pytest.raises(ConfigError, match="unknown config key 'agent.step_limt'"):
        agent_for([SUBMIT], tmp_path, step_limt=3)


@pytest.mark.parametrize("agent_class", ["default", "interactive"])
def test_keyword_arguments_override_a_given_config(tmp_path, agent_class):
    from wren.agents.interactive import InteractiveAgent, InteractiveAgentConfig

    cls, schema = (
        (DefaultAgent, AgentConfig)
        if agent_class == "default"
        else (InteractiveAgent, InteractiveAgentConfig)
    )
    config = validate(schema, read_yaml("default")["agent"], where="agent")
    env = LocalEnvironment(cwd=str(tmp_path))
    agent = cls(ScriptedModel(outputs=[bash("true")] * 3), env, config=config, step_limit=1)
    assert agent.config.step_limit == 1
    assert config.step_limit != 1, "the caller's config is not changed"
    assert agent.run("x").exit_status == "LimitsExceeded" and agent.n_steps == 1
    with pytest.raises(ConfigError, match="unknown config key 'agent.step_limt'"):
        cls(ScriptedModel(outputs=[]), env, config=config, step_limt=1)


def test_a_saved_state_is_restored_and_the_run_goes_on_from_it(tmp_path):
    """The public step API the tree search drives: begin, state/restore, attempt and query."""
    agent = agent_for([bash("echo one"), bash("echo two"), bash("echo again"), "no action"], tmp_path)
    agent.begin("t")
    opening = agent.state()
    assert [m["role"] for m in opening.messages] == ["system", "user"] and opening.n_steps == 0
    first = agent.attempt(agent.step)
    assert first.record["output"].strip() == "one" and not first.exit_status
    after_one = agent.state()
    agent.attempt(agent.step)
    assert agent.n_steps == 2
    agent.restore(after_one)  # back to one step; the copy in the state did not grow meanwhile
    assert agent.n_steps == 1 and len(agent.messages) == len(after_one.messages) == 4
    assert agent.attempt(agent.step).record["output"].strip() == "again"
    # A recoverable error goes back to the model as an observation; the state says so.
    outcome = agent.attempt(agent.step)
    assert not outcome.exit_status and outcome.record == {} and agent.format_errors == 1
    assert "Format error" in agent.messages[-1]["content"]


def test_a_final_exception_of_a_step_is_its_outcome(tmp_path):
    agent = agent_for([SUBMIT], tmp_path, step_limit=1)
    agent.begin("t")
    assert agent.attempt(agent.step).exit_status == "Submitted"
    limited = agent.attempt(agent.step)
    assert limited.exit_status == "LimitsExceeded" and "step limit" in limited.reason


class _TemperatureModel(ScriptedModel):
    def query(self, messages, **kwargs):
        self.asked = kwargs.get("temperature")
        return super().query(messages, **kwargs)


def test_a_query_at_a_temperature_asks_the_model_without_changing_its_config(tmp_path):
    model = _TemperatureModel(outputs=[bash("true"), bash("true")])
    agent = DefaultAgent(model, LocalEnvironment(cwd=str(tmp_path)))
    agent.begin("t")
    agent.query(temperature=0.9)
    assert model.asked == 0.9
    agent.query()
    assert model.asked is None  # no temperature given: the model's own
