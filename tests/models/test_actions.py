from __future__ import annotations

import json

import pytest

from wren.exceptions import FormatError
from wren.models.actions import parse_action, parse_text_action, parse_tool_action


@pytest.mark.parametrize(
    "content",
    [
        "THOUGHT: x\n\n```bash\nls -la\n```",
        "THOUGHT: x\n```sh\nls -la\n```",
        "```shell\nls -la\n```\n",
        "```bash   \nls -la\n```",
        "```BASH\nls -la```",
        "THOUGHT: stopped at the fence\n```bash\nls -la\n",
        "```bash\r\nls -la\r\n```",
    ],
)
def test_small_model_fences_are_accepted(content):
    assert parse_text_action(content).command.strip() == "ls -la"


def test_multiline_command_is_kept_whole():
    action = parse_text_action("```bash\ncat <<'EOF' > f.py\nprint(1)\nEOF\n```")
    assert action.command == "cat <<'EOF' > f.py\nprint(1)\nEOF"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("I think we should list files.", "found no bash code blocks"),
        ("```bash\nls\n```\nand\n```bash\npwd\n```", "found 2 bash code blocks"),
        ("```python\nprint(1)\n```", "found no bash code blocks"),
        ("```bash\n\n```", "empty"),
    ],
)
def test_zero_or_several_actions_are_format_errors(content, message):
    with pytest.raises(FormatError, match=message):
        parse_text_action(content)


def _call(arguments, name="bash", id_="c1"):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_tool_call_arguments_as_object_json_or_double_encoded_string():
    assert parse_tool_action([_call({"command": "ls"})]).command == "ls"
    assert parse_tool_action([_call(json.dumps({"command": "ls"}))]).command == "ls"
    assert parse_tool_action([_call(json.dumps(json.dumps({"command": "ls"})))]).command == "ls"
    assert parse_tool_action([_call(' {"command": "pwd"} ')]).tool_call_id == "c1"


def test_tool_call_errors():
    with pytest.raises(FormatError, match="found no tool calls"):
        parse_tool_action([])
    with pytest.raises(FormatError, match="found 2 tool calls"):
        parse_tool_action([_call({"command": "ls"}), _call({"command": "pwd"}, id_="c2")])
    with pytest.raises(FormatError, match="unknown tool 'python'"):
        parse_tool_action([_call({"command": "ls"}, name="python")])
    with pytest.raises(FormatError, match="non-empty string argument 'command'"):
        parse_tool_action([_call({"cmd": "ls"})])


def test_toolcall_mode_accepts_a_fenced_block_without_tool_calls():
    assert parse_action({"content": "```bash\nls\n```"}, "toolcall").command == "ls"
    with pytest.raises(FormatError):
        parse_action({"content": "no tools"}, "toolcall")
