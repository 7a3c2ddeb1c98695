"""`wren inspect`: browse saved runs (Wren's or mini-swe-agent's) in a Textual app.

The run list shows each run's exit status, cost and steps and filters as you type; a run opens into its
steps (h/l/0/$), a search through its messages (/, n, N), and its submitted diff, coloured (d).
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from wren.trajectory import message_text, read_run
from wren.ui.runs import RunSummary, filter_runs, summarise
from wren.ui.widgets import MessageView, StepNavigation, diff_renderable, step_bindings

STATUS_STYLES = {
    "Submitted": "green",
    "LimitsExceeded": "yellow",
    "Interrupted": "magenta",
    "unreadable": "red",
}
SORT_KEYS = {
    "name": lambda r: r.name,
    "status": lambda r: (r.exit_status, r.name),
    "cost": lambda r: (-r.cost, r.name),
    "steps": lambda r: (-r.steps, r.name),
}


def status_text(status: str) -> Text:
    return Text(status or "unfinished", style=STATUS_STYLES.get(status, "red" if status else "dim"))


def run_cells(run: RunSummary, path: str) -> tuple:
    """One run's cells for the run tables: name, exit status, steps, cost, model, path."""
    return (run.name, status_text(run.exit_status), str(run.steps), f"${run.cost:.4f}", run.model, path)


class RunListScreen(Screen):
    """Every run found, filtered by the query typed at the top."""

    CSS = """
    #filter { margin: 0 1; }
    #runs { height: 1fr; }
    #totals { height: 1; background: $boost; padding: 0 1; }
    """
    BINDINGS = [
        Binding("slash,f", "focus_filter", "Filter"),
        Binding("escape", "leave_filter", "Leave filter", show=False),
        Binding("s", "sort", "Sort"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, runs: list[RunSummary]):
        super().__init__()
        self.runs = runs
        self.shown: list[RunSummary] = list(runs)
        self.sort_key = "name"
        # Paths are shown relative to the directory all runs share, so the column says what differs.
        parents = [str(r.path.parent.resolve()) for r in runs]
        self.base = Path(os.path.commonpath(parents)) if parents else Path(".")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            id="filter",
            placeholder='filter: words · status:Submitted · id:… · model:… · text:"…" (Enter for text:)',
        )
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="totals")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_columns("run", "exit status", "steps", "cost", "model", "path")
        self.refresh_table()
        table.focus()

    def refresh_table(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        self.shown.sort(key=SORT_KEYS[self.sort_key])
        for i, run in enumerate(self.shown):
            table.add_row(*run_cells(run, self.shown_path(run.path)), key=str(i))
        submitted = sum(1 for r in self.shown if r.exit_status == "Submitted")
        cost = sum(r.cost for r in self.shown)
        self.query_one("#totals", Static).update(
            f"{len(self.shown)} of {len(self.runs)} runs │ {submitted} submitted │ ${cost:.4f} │ sorted by {self.sort_key}"
        )
        self.app.title = "wren inspect"
        self.app.sub_title = f"{len(self.runs)} runs in {self.base}"

    def shown_path(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.base))
        except ValueError:
            return str(path)

    def apply_filter(self, query: str) -> None:
        self.shown = filter_runs(self.runs, query)
        self.refresh_table()

    def on_input_changed(self, event: Input.Changed) -> None:
        if "text:" not in event.value:  # message search reads files: only on Enter
            self.apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.apply_filter(event.value)
        self.query_one("#runs", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_run(int(str(event.row_key.value)))

    def open_run(self, index: int) -> None:
        if 0 <= index < len(self.shown):
            self.app.push_screen(RunScreen(self.shown, index))

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one("#runs", DataTable).focus()

    def action_sort(self) -> None:
        keys = list(SORT_KEYS)
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.refresh_table()


class RunScreen(StepNavigation, Screen):
    """One run: its steps, a search through its messages, and its submitted diff."""

    CSS = """
    #run-status { height: 1; background: $boost; padding: 0 1; }
    #messages { height: 1fr; padding: 0 1; }
    #search { dock: bottom; display: none; }
    #search.searching { display: block; }
    """
    BINDINGS = [
        *step_bindings(show_ends=False),
        Binding("slash", "search", "Search"),
        Binding("n", "next_match", "Next match"),
        Binding("N", "previous_match", "Prev match", show=False),
        Binding("d", "toggle_diff", "Diff"),
        Binding("H", "previous_run", "Prev run"),
        Binding("L", "next_run", "Next run"),
        Binding("escape,q", "back", "Back"),
    ]

    def __init__(self, runs: list[RunSummary], index: int):
        super().__init__()
        self.runs = runs
        self.index = index
        self.run: RunSummary = runs[index]
        self.steps: list[list[dict]] = []
        self.i_step = 0
        self.showing_diff = False
        self.query_text = ""
        self.matches: list[int] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-status")
        yield VerticalScroll(id="messages")
        yield Input(
            id="search", placeholder="search the messages of this run (Enter; n / N for the next / previous)"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        summary = self.runs[self.index]
        try:
            run = read_run(summary.path)
            self.run, self.steps = summarise(run), run.pages
        except Exception as e:  # an unreadable file is shown, not fatal
            self.run, self.steps = summary, []
            self.notify(f"cannot read {summary.path}: {e}", severity="error")
        self.i_step = 0
        self.showing_diff = False
        self.matches = self.find_matches(self.query_text)
        self.show()

    # --- showing ---

    def update_status(self) -> None:
        run = self.run
        where = "submitted diff" if self.showing_diff else f"step {self.i_step}/{max(len(self.steps) - 1, 0)}"
        found = ""
        if self.query_text:
            current = self.matches.index(self.i_step) + 1 if self.i_step in self.matches else "-"
            found = f" │ {current}/{len(self.matches)} steps match {self.query_text!r}"
        status = run.exit_status or "unfinished"
        text = f"{where} │ {status} │ {run.steps} steps │ ${run.cost:.4f} │ {run.model or 'model ?'}{found}"
        self.query_one("#run-status", Static).update(text)
        self.app.title = f"{run.name} · {status}"
        self.app.sub_title = f"run {self.index + 1}/{len(self.runs)} · {run.path}"

    def show(self) -> None:
        container = self.query_one("#messages", VerticalScroll)
        container.remove_children()
        if self.showing_diff:
            diff = self.run.submission.strip()
            container.mount(Static(diff_renderable(diff) if diff else Text("(no submission)"), id="diff"))
        elif self.steps:
            views = [
                MessageView(m, step=self.i_step, highlight=self.query_text) for m in self.steps[self.i_step]
            ]
            container.mount_all(views)
        else:
            container.mount(Static("(no messages)"))
        container.scroll_home(animate=False)
        self.update_status()

    def go_to_step(self, index: int) -> None:
        if self.steps:
            self.i_step = max(0, min(index, len(self.steps) - 1))
            self.showing_diff = False
            self.show()

    # --- search ---

    def find_matches(self, query: str) -> list[int]:
        if not query:
            return []
        needle = query.lower()
        return [
            i for i, step in enumerate(self.steps) if any(needle in message_text(m).lower() for m in step)
        ]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_text = event.value.strip()
        event.input.remove_class("searching")
        self.matches = self.find_matches(self.query_text)
        self.query_one("#messages").focus()
        if self.query_text and not self.matches:
            self.notify(f"{self.query_text!r} is not in this run", severity="warning")
        later = [i for i in self.matches if i >= self.i_step]
        self.go_to_step(later[0] if later else self.matches[0] if self.matches else self.i_step)

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.add_class("searching")
        search.value = self.query_text
        search.focus()

    def action_next_match(self) -> None:
        later = [i for i in self.matches if i > self.i_step]
        if later or self.matches:
            self.go_to_step(later[0] if later else self.matches[0])

    def action_previous_match(self) -> None:
        earlier = [i for i in self.matches if i < self.i_step]
        if earlier or self.matches:
            self.go_to_step(earlier[-1] if earlier else self.matches[-1])

    # --- keys ---

    def action_toggle_diff(self) -> None:
        self.showing_diff = not self.showing_diff
        self.show()

    def action_previous_run(self) -> None:
        if self.index > 0:
            self.index -= 1
            self.load()

    def action_next_run(self) -> None:
        if self.index < len(self.runs) - 1:
            self.index += 1
            self.load()

    def action_back(self) -> None:
        search = self.query_one("#search", Input)
        if search.has_class("searching"):
            search.remove_class("searching")
            self.query_one("#messages").focus()
        elif len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()


class InspectorApp(App):
    """Runs found at a path: a list, and one run at a time."""

    TITLE = "wren inspect"

    def __init__(self, runs: list[RunSummary], *, open_first: bool | None = None):
        super().__init__()
        self.runs = runs
        self.open_first = len(runs) == 1 if open_first is None else open_first

    def on_mount(self) -> None:
        self.push_screen(RunListScreen(self.runs))
        if self.open_first and self.runs:
            self.push_screen(RunScreen(self.runs, 0))
