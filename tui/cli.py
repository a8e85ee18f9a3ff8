"""`cdl-tui`: the command line.

Reads flags, resolves settings (flags > CDL_* env > config file > CONDUCTOR_* env >
defaults), and runs the download. Errors in what the user gave (flags, config, job specs,
credentials) print one line on stderr and exit 2 before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cdl_tui.core.config import Settings, describe_settings, resolve_settings
from cdl_tui.core.connect import client_from
from cdl_tui.core.credentials import Credentials
from cdl_tui.core.destination import DestinationPolicy
from cdl_tui.core.errors import AuthError, CdlError, ConfigError
from cdl_tui.core.jobspec import JobSpec, parse_job_specs
from cdl_tui.core.logsetup import configure_logging
from cdl_tui.core.simple_run import SimpleRunner
from cdl_tui.core.version import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdl-tui",
        description="Download finished render outputs from a farm, verified.",
        epilog="Examples: cdl-tui --demo  |  cdl-tui --job 08285 --exit-when-done",
    )
    parser.add_argument("specs", nargs="*", metavar="JOB", help="job specs, e.g. 08285:1-10")
    parser.add_argument(
        "--job", action="append", default=[], metavar="SPEC", help="a job spec (repeatable)"
    )
    parser.add_argument("--demo", action="store_true", help="run against an embedded demo farm")
    parser.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit once every file of the given jobs is verified",
    )
    parser.add_argument("--output", metavar="DIR", help="download into DIR/<job_id>/")
    parser.add_argument("--threads", metavar="N", help="download worker threads (default 8)")
    parser.add_argument("--location", metavar="TAG", help="location tag for daemon mode")
    parser.add_argument("--api-url", metavar="URL", help="base URL of the farm API")
    parser.add_argument(
        "--api-key-file", metavar="FILE", help="file with a bearer token or vendor API key"
    )
    parser.add_argument("--ca-bundle", metavar="PEM", help="CA bundle to verify TLS with")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify TLS certificates (not advised)"
    )
    parser.add_argument("--config", metavar="FILE", help="config file (TOML)")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--log-dir", metavar="DIR", help="folder for the rotating log file")
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings and where each came from, then exit",
    )
    parser.add_argument("--version", action="version", version=f"cdl-tui {__version__}")
    return parser


# argparse dest -> setting name, for the flags that are settings.
_SETTING_FLAGS = {
    "output": "output",
    "threads": "threads",
    "location": "location",
    "api_url": "api_url",
    "api_key_file": "api_key_file",
    "ca_bundle": "ca_bundle",
    "log_level": "log_level",
    "log_dir": "log_dir",
}


def _flag_settings(args: argparse.Namespace) -> dict[str, Any]:
    flags = {
        name: getattr(args, dest)
        for dest, name in _SETTING_FLAGS.items()
        if getattr(args, dest) is not None
    }
    if args.insecure:
        flags["tls_verify"] = False
    return flags


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = resolve_settings(
            _flag_settings(args), config_path=Path(args.config) if args.config else None
        )
        specs = parse_job_specs([*args.job, *args.specs])
        if args.print_config:
            _print_config(settings)
            return EXIT_OK
        if args.demo:
            return _run_demo(settings, specs, args)
        if not specs:
            raise ConfigError("no job given: name the jobs to download, e.g. cdl-tui 08285")
        return _run(settings, specs, None)
    except (ConfigError, AuthError) as exc:
        print(f"cdl-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cdl-tui: interrupted", file=sys.stderr)
        return EXIT_SIGINT


def _print_config(settings: Settings) -> None:
    rows = describe_settings(settings)
    width = max(len(name) for name, _, _ in rows)
    for name, shown, source in rows:
        print(f"{name:<{width}}  {shown}  ({source})")


def _run_demo(settings: Settings, specs: list[JobSpec], args: argparse.Namespace) -> int:
    from .demo import DEMO_OUTPUT, demo_farm

    if settings.output is None:
        settings = _with(settings, output=DEMO_OUTPUT.resolve())
    print(f"cdl-tui: starting the demo farm; downloading into {settings.output}", flush=True)
    with demo_farm() as farm:
        settings = _with(settings, api_url=farm.url)
        specs = specs or parse_job_specs(farm.job_ids)
        print(f"cdl-tui: demo farm at {farm.url} with jobs {' '.join(farm.job_ids)}", flush=True)
        code = _run(settings, specs, farm.credentials)
    if not args.exit_when_done:
        print("cdl-tui: the demo farm is done (--exit-when-done makes that the end of a run)")
    return code


def _with(settings: Settings, **changes: Any) -> Settings:
    from dataclasses import replace

    sources = dict(settings.sources)
    sources.update(dict.fromkeys(changes, "demo"))
    return replace(settings, **changes, sources=sources)


def _run(settings: Settings, specs: list[JobSpec], credentials: Credentials | None) -> int:
    client = client_from(settings, credentials)
    configure_logging(level=settings.log_level, log_dir=settings.log_dir)
    with _closing(client):
        runner = SimpleRunner(
            client,
            DestinationPolicy(output=settings.output),
            threads=settings.threads,
            page_size=settings.page_size,
        )
        try:
            totals = runner.run_jobs(specs)
        except KeyboardInterrupt:
            runner.stop_event.set()
            raise
        except CdlError as exc:
            if isinstance(exc, AuthError):
                raise
            print(f"cdl-tui: {exc}", file=sys.stderr)
            return EXIT_FAILED
    print(
        f"cdl-tui: {totals.downloads_done} tasks done, {totals.files_downloaded} files "
        f"downloaded ({totals.bytes_downloaded:,} bytes), {totals.files_cached} cached, "
        f"{totals.downloads_failed + totals.rejected} failed"
    )
    return EXIT_OK if totals.ok else EXIT_FAILED


@contextlib.contextmanager
def _closing(client: Any) -> Iterator[None]:
    try:
        yield
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
