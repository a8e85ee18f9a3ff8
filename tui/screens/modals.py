"""The modal screens: a yes/no question, the add-job dialog, and the key help."""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Static

from cdl_tui.core.model.errors import JobSpecError
from cdl_tui.core.model.jobspec import JobSpec, parse_job_specs
from cdl_tui.core.model.units import parse_size
from cdl_tui.tui.summary import size


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; y/Enter says yes, n/Escape says no (the hint says so)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 64; max-width: 100%; height: auto;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    ConfirmScreen Label { width: 100%; }
    ConfirmScreen .hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, question: str, yes: str = "yes", no: str = "no") -> None:
        super().__init__()
        self.question = question
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Label(
                f"[b]y[/b] or [b]Enter[/b]: {self.yes} (the default)    "
                f"[b]n[/b] or [b]Escape[/b]: {self.no}",
                classes="hint",
            )

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class JobSpecsValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        if not value.strip():
            return self.failure("Type one or more job IDs, like 08285 08286:1-10")
        try:
            parse_job_specs([value])
        except JobSpecError as exc:
            return self.failure(str(exc))
        return self.success()


class AddJobScreen(ModalScreen[list[JobSpec] | None]):
    """Job specs, validated as you type; Enter adds them, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="add-job-cancel"),
    ]
    DEFAULT_CSS = """
    AddJobScreen { align: center middle; }
    AddJobScreen > Vertical {
        width: 72; height: auto;
        border: thick $accent; background: $surface; padding: 1 2;
    }
    AddJobScreen #add-job-error { color: $error; height: auto; margin-top: 1; }
    AddJobScreen #add-job-ok { color: $success; height: auto; margin-top: 1; }
    AddJobScreen .hint { color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Add jobs[/b]")
            yield Label(
                "Job specs, separated by spaces: 08285  08286:1-10  8290:1-9x2,12", classes="hint"
            )
            field = Input(
                placeholder="08285 08286:1-10",
                validators=[JobSpecsValidator()],
                validate_on=["changed", "submitted"],
                id="add-job-input",
            )
            field.cursor_blink = False  # a blink is a repaint; bytes count over SSH
            yield field
            yield Static("", id="add-job-error")
            yield Static("", id="add-job-ok")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show(event.validation_result, event.value)

    def _show(self, result: ValidationResult | None, value: str) -> None:
        error = self.query_one("#add-job-error", Static)
        ok = self.query_one("#add-job-ok", Static)
        if result is not None and not result.is_valid:
            error.update(result.failure_descriptions[0] if value.strip() else "")
            ok.update("")
        else:
            specs = parse_job_specs([value])
            error.update("")
            ok.update(
                "Enter adds "
                + ", ".join(
                    f"job {s.job_id}" + (f" ({len(s.task_ids)} tasks)" if s.task_ids else "")
                    for s in specs
                )
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.validation_result is not None and not event.validation_result.is_valid:
            self._show(event.validation_result, event.value or " ")
            return
        self.dismiss(parse_job_specs([event.value]))

    def action_cancel(self) -> None:
        self.dismiss(None)


class RateValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        try:
            parse_rate(value)
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()


def parse_rate(text: str) -> float | None:
    """A bandwidth limit as typed: 40MB/s, 25MiB, 0 or nothing for none."""
    text = text.strip()
    if text.lower() in ("", "0", "none", "off"):
        return None
    rate = parse_size(text)
    return float(rate) if rate > 0 else None


class BandwidthScreen(ModalScreen[float | None | bool]):
    """Set the bandwidth limit: Enter applies (0 removes it; empty keeps it), Escape cancels.

    Dismisses with the new rate (None: no limit), or False if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="bandwidth-cancel"),
    ]
    DEFAULT_CSS = """
    BandwidthScreen { align: center middle; }
    BandwidthScreen > Vertical {
        width: 64; max-width: 100%; height: auto;
        border: thick $accent; background: $surface; padding: 1 2;
    }
    BandwidthScreen #bandwidth-error { color: $error; height: auto; }
    BandwidthScreen .hint { color: $text-muted; }
    """

    def __init__(self, current: float | None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        now = f"{size(self.current)}/s" if self.current else "none"
        with Vertical():
            yield Label("[b]Bandwidth limit[/b] for all downloads together")
            yield Label(
                f"Now: {now}. Examples: 40MB/s, 25MiB, 0 for none (empty: no change).",
                classes="hint",
            )
            field = Input(
                placeholder="40MB/s",
                validators=[RateValidator()],
                validate_on=["changed", "submitted"],
                id="bandwidth-input",
            )
            field.cursor_blink = False
            yield field
            yield Static("", id="bandwidth-error")

    def on_input_changed(self, event: Input.Changed) -> None:
        result = event.validation_result
        message = "" if result is None or result.is_valid else result.failure_descriptions[0]
        self.query_one("#bandwidth-error", Static).update(message)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.validation_result is not None and not event.validation_result.is_valid:
            return
        if not event.value.strip():  # an Enter that came before the digits: keep the limit
            self.dismiss(False)
            return
        self.dismiss(parse_rate(event.value))

    def action_cancel(self) -> None:
        self.dismiss(False)


KEYS = [
    ("p", "pause or resume everything"),
    ("space", "pause or resume the selected download"),
    ("t", "move the selected pending download to the top of the queue"),
    ("c", "cancel the selected download (asks first)"),
    ("r", "retry the selected failed download"),
    ("R", "retry every failed download"),
    ("a", "add jobs (e.g. 08285 08286:1-10)"),
    ("+ / -", "one more / one fewer download thread"),
    ("b", "set the bandwidth limit (e.g. 40MB/s; 0 for none)"),
    ("1 2 3, tab", "Active, Pending, History tab"),
    ("/", "filter the history (Enter applies, Escape clears)"),
    ("e", "History: show or hide earlier runs (from the journal)"),
    ("Enter", "details of the selected row: full reason, attempts, paths, IDs"),
    ("l", "the log: recent warnings and errors"),
    ("ctrl+p", "every action by name (the command palette)"),
    ("arrows pgup pgdn", "move the selection (home, end too)"),
    ("?", "this help"),
    ("q", "quit: downloads stop cleanly and go back to the farm (asks while active)"),
]


class TextScreen(ModalScreen[None]):
    """A scrollable text over the main screen (arrows, pgup/pgdn, home/end scroll it);
    Escape closes it. Small terminals see every line by scrolling."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "close", "Close", id="text-close"),
    ]
    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > Vertical {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    TextScreen VerticalScroll { height: auto; max-height: 100%; }
    TextScreen > Vertical { border-title-style: bold; border-subtitle-color: $text-muted; }
    """

    def __init__(self, title: str, body: RenderableType, hint: str = "Escape closes") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.hint = hint

    def compose(self) -> ComposeResult:
        # Title and hint sit in the border, so the text gets every other line and the
        # hint is never scrolled or pushed away on a small terminal.
        frame = Vertical()
        frame.border_title = self.title_text
        frame.border_subtitle = self.hint
        with frame, VerticalScroll(id="text-body"):
            yield Static(self.body, id="text-content")

    def on_mount(self) -> None:
        self.query_one("#text-body", VerticalScroll).focus()

    def set_body(self, body: RenderableType) -> None:
        """Show another text (what a thread gathered while the screen was open)."""
        self.body = body
        if self.is_mounted:
            self.query_one("#text-content", Static).update(body)

    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(TextScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help-close"),
    ]

    def __init__(self) -> None:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1)
        for key, what in KEYS:
            table.add_row(key, what)
        super().__init__("cdl-tui keys", table, "arrows scroll · Escape closes this help")
