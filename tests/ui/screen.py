"""Reading what a Textual app shows, as plain text lines, and waiting for a condition under the pilot."""

from __future__ import annotations

import time
from collections.abc import Callable


def screen_text(app) -> str:
    """The characters on the app's screen right now (what a person sees, without colours)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(pilot, condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Let the app run until `condition()` is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what or condition}\n--- screen ---\n{screen_text(pilot.app)}"
            )
        await pilot.pause(0.05)
    await pilot.pause()
