import pytest

from cdl_tui.core.model.errors import JobSpecError
from cdl_tui.core.model.jobspec import JobSpec, parse_job_spec, parse_job_specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8285", JobSpec("08285")),
        ("08285", JobSpec("08285")),
        ("08285:1-10", JobSpec("08285", tuple(f"{n:03d}" for n in range(1, 11)))),
        (
            "08285:1-5x2,10,12-14",
            JobSpec("08285", ("001", "003", "005", "010", "012", "013", "014")),
        ),
        ("7:4", JobSpec("00007", ("004",))),
        ("7:3,1,3", JobSpec("00007", ("003", "001"))),  # order kept, duplicates dropped
        (" 12:1000-1001 ", JobSpec("00012", ("1000", "1001"))),  # padding is a minimum width
    ],
)
def test_parses_the_contract_forms(text, expected):
    assert parse_job_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("abc", "job ID must be digits"),
        ("08285:", "nothing after ':'"),
        ("08285:x", "malformed task range 'x'"),
        ("08285:5-1", "1 < 5"),
        ("08285:1-9x0", "step must be >= 1"),
        ("08285:1--3", "malformed task range"),
        ("-3", "job ID must be digits"),
        ("08285:1-99999999", "too many tasks"),
    ],
)
def test_malformed_specs_get_a_clear_one_line_error(text, fragment):
    with pytest.raises(JobSpecError) as info:
        parse_job_spec(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_several_specs_in_one_string_and_in_a_list():
    specs = parse_job_specs(["08285 08286:1-2", "9"])
    assert [s.job_id for s in specs] == ["08285", "08286", "00009"]
    assert specs[1].task_ids == ("001", "002")


def test_str_round_trips_the_meaning():
    assert str(parse_job_spec("8285:1-3")) == "08285:001,002,003"
    assert str(parse_job_spec("8285")) == "08285"
