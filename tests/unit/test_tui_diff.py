from rich.text import Text

from cdl_tui.tui.widgets.diff import changed_span


def test_equal_lines_need_nothing():
    assert changed_span(Text("abc"), Text("abc")) is None


def test_a_change_in_the_middle_is_just_that_span():
    assert changed_span(Text("rate 10.1 MiB/s eta"), Text("rate 12.3 MiB/s eta")) == (6, 9)


def test_a_length_change_repaints_to_the_end():
    # "9.9s" -> "10.0s": everything after moved one column to the right
    assert changed_span(Text("up 9.9s | jobs"), Text("up 10.0s | jobs")) == (3, 15)
    assert changed_span(Text("up 10.0s | jobs"), Text("up 9.9s | jobs")) == (3, 15)


def test_style_changes_count():
    old = Text.assemble(("███", "green"), ("░░░", "dim"))
    new = Text.assemble(("████", "green"), ("░░", "dim"))
    assert changed_span(old, new) == (3, 4)


def test_wide_characters_repaint_the_line():
    assert changed_span(Text("ファイル a"), Text("ファイル b")) == (0, 10)


def test_nothing_painted_yet():
    assert changed_span(None, Text("abc")) == (0, 3)
