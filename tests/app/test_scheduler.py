"""The scheduler CLI explains every option and rejects bad flags with the option's name."""

from __future__ import annotations

import argparse

import pytest

from app.scheduler import build_parser, main


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_has_help_text() -> None:
    commands = subcommands()
    assert {
        "count",
        "record",
        "noop",
        "noop-batch",
        "lcs",
        "wordcount",
        "sweep",
        "completions",
    } <= set(commands)
    for name, parser in [("(top)", build_parser()), *commands.items()]:
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help text"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["count", "--n", "0"], "argument --n: 0 is out of range 1..10000000"),
        (["count", "--n", "many"], "argument --n: 'many' is not a whole number"),
        (["count", "--queue", "huge"], "argument --queue: invalid choice: 'huge'"),
        (["record", "--n", "5"], "the following arguments are required: --prefix"),
        (["record", "--prefix", "p", "--work-seconds", "-1"], "out of range 0..600 seconds"),
        (["record", "--prefix", "p", "--countdown", "soon"], "'soon' is not a number of seconds"),
        (["record", "--prefix", "p", "--countdown", "90000"], "out of range 0..86400 seconds"),
        (["--window", "0", "noop"], "argument --window: 0 is not allowed; give a whole number "
         "1..10000"),
        (["--window", "wide", "noop"], "argument --window: 'wide' is not a whole number"),
        (["teleport"], "invalid choice: 'teleport'"),
        ([], "the following arguments are required: TASK"),
    ],
)
def test_bad_flags_exit_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv, {})
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_environment_exits_2_with_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["noop", "--n", "1"], {"CELERY_BROKER_URL": "redis://x"}) == 2
    assert "CELERY_BROKER_URL" in capsys.readouterr().err


def test_an_unreachable_broker_stops_with_the_count_enqueued(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.app.conftest import free_port

    environ = {"CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}
    assert main(["--no-progress", "--retry-seconds", "0.5", "noop", "--n", "3"], environ) == 1
    assert "publishing stopped after 0 of 3 tasks" in capsys.readouterr().err
