"""The modal screens: a yes/no question, the add-job dialog, and the key help."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Static

from cdl_tui.core.errors import JobSpecError
from cdl_tui.core.jobspec import JobSpec, parse_job_specs


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; y/Enter says yes, n/Escape says no."""

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

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Label("[b]y[/b] yes    [b]n[/b] no", classes="hint")

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


KEYS = [
    ("p", "pause or resume everything"),
    ("space", "pause or resume the selected download"),
    ("t", "move the selected pending download to the top of the queue"),
    ("c", "cancel the selected download (asks first)"),
    ("r", "retry the selected failed download"),
    ("R", "retry every failed download"),
    ("a", "add jobs (e.g. 08285 08286:1-10)"),
    ("+ / -", "one more / one fewer download thread"),
    ("1 2 3, tab", "Active, Pending, History tab"),
    ("/", "filter the history (Enter applies, Escape clears)"),
    ("arrows pgup pgdn", "move the selection (home, end too)"),
    ("?", "this help"),
    ("q", "quit: downloads stop cleanly and go back to the farm (asks while active)"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help-close"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    HelpScreen .hint { color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1)
        for key, what in KEYS:
            table.add_row(key, what)
        with Vertical():
            yield Label("[b]cdl-tui keys[/b]")
            yield Static(table)
            yield Label("Escape closes this help", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
