"""The docs' screenshots come from real sessions: regenerating them works and shows what the docs say."""

from __future__ import annotations

import re
from html import unescape

from wren.ui.screenshots import make_screenshots


def svg_text(path) -> str:
    spans = re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text())
    return unescape("".join(spans)).replace("\xa0", " ")


def test_screenshots_are_made_from_live_apps(tmp_path):
    shots = {p.name: svg_text(p) for p in make_screenshots(tmp_path)}
    assert set(shots) == {
        "tui-confirm.svg",
        "tui-steps.svg",
        "inspect-list.svg",
        "inspect-step.svg",
        "inspect-diff.svg",
    }
    assert "Run this command?" in shots["tui-confirm.svg"] and "mode confirm" in shots["tui-confirm.svg"]
    assert "finished: Submitted" in shots["tui-steps.svg"] and "step 3/4" in shots["tui-steps.svg"]
    assert "LimitsExceeded" in shots["inspect-list.svg"] and "3 of 3 runs" in shots["inspect-list.svg"]
    # Textual's SVG places each styled span by position, so the spaces between coloured words are not text.
    assert "sed-i's/a-b/a+b/'calc.py" in shots["inspect-step.svg"].replace(" ", "")
    assert "+    return a + b" in shots["inspect-diff.svg"]
