"""`cdl-tui`: the command line.

Reads flags, resolves settings (flags > CDL_* env > config file > CONDUCTOR_* env >
defaults), and runs the engine: in job mode when job specs are given, in daemon mode
(`/downloads/next`) otherwise. Errors in what the user gave (flags, config, job specs,
credentials) print one line on stderr and exit 2 before anything is downloaded.
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from cdl_tui.core.config import Settings, default_state_dir, describe_settings, resolve_settings
from cdl_tui.core.connect import client_from, engine_config_from
from cdl_tui.core.engine import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Engine, EngineConfig
from cdl_tui.core.farm.credentials import Credentials
from cdl_tui.core.files.destination import DestinationPolicy, prepare_output_root
from cdl_tui.core.logsetup import configure_logging
from cdl_tui.core.model import faults
from cdl_tui.core.model.errors import AuthError, CdlError, ConfigError
from cdl_tui.core.model.jobspec import JobSpec, parse_job_specs
from cdl_tui.core.model.settings import TRANSFER_ENGINES
from cdl_tui.core.model.version import __version__

EXIT_SIGINT = 130

log = logging.getLogger("cdl.cli")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is in --help)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cdl-tui",
        description=(
            "Download finished render outputs from a farm, verified. With job specs it "
            "downloads those jobs (job mode); without, it takes what the farm hands out "
            "(daemon mode, /downloads/next)."
        ),
        epilog="Examples: cdl-tui --demo  |  cdl-tui --job 08285 --exit-when-done",
    )
    add = parser.add_argument
    add("specs", nargs="*", metavar="JOB", help="job specs, e.g. 08285 or 08285:1-5x2,10")
    add("--job", action="append", default=[], metavar="SPEC", help="a job spec (repeatable)")
    add("--exit-when-done", action="store_true", help="exit once the given jobs are done")
    add("--demo", action="store_true", help="run against an embedded demo farm")
    add("--headless", action="store_true", help="plain-text output instead of the full screen")
    add("--refresh-hz", metavar="HZ", help="full-screen refreshes per second (4; 2 over SSH)")
    add("--no-mouse", action="store_true", help="full screen without mouse support")
    add("--output", metavar="DIR", help="download into DIR/<job_id>/ (default: output_dir)")
    add("--threads", metavar="N", help="download worker threads (default 8)")
    add("--location", metavar="TAG", help="daemon mode: only Downloads with this location tag")
    add("--api-url", metavar="URL", help="base URL of the farm API")
    add("--api-key-file", metavar="FILE", help="file with a bearer token or vendor API key")
    add("--ca-bundle", metavar="PEM", help="CA bundle to verify TLS with")
    add("--insecure", action="store_true", help="do not verify TLS certificates (not advised)")
    add("--regex", metavar="RE", help="download only files whose relative path matches")
    add("--force", action="store_true", help="re-download files even if already in place")
    add(
        "--on-conflict",
        choices=("overwrite", "skip", "backup"),
        help="an existing file that differs from the farm's (default overwrite)",
    )
    add("--disable-reporting", action="store_true", help="send no status reports to the farm")
    add(
        "--transfer",
        choices=TRANSFER_ENGINES,
        help="how files move: libcurl (curl), http.client (python); default auto",
    )
    add("--max-bandwidth", metavar="RATE", help="limit all downloads together, e.g. 40MB/s")
    add("--on-job-done", metavar="CMD", help="run CMD (via the shell) when a job completes")
    add("--no-md5-cache", action="store_true", help="hash existing files even if unchanged")
    add("--max-attempts", metavar="N", help="attempts per Download before FAILED (default 5)")
    add("--poll-interval", metavar="S", help="nap when the farm has nothing (default 15 s)")
    add("--summary-interval", metavar="S", help="seconds between summaries (default 10)")
    add("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR")
    add("--log-dir", metavar="DIR", help="folder for the rotating log file")
    add("--config", metavar="FILE", help="config file (TOML)")
    add("--report", metavar="PATH", help="write a JSON report of the run at exit")
    add("--events-jsonl", metavar="PATH|-", help="write each lifecycle event as a JSON line")
    add("--verify", action="store_true", help="compare the files on disk with the farm's md5s")
    add("--dry-run", action="store_true", help="list what would be fetched; write nothing")
    add("--print-config", action="store_true", help="print effective settings and sources")
    add("--version", action="version", version=f"cdl-tui {__version__}")
    return parser


# argparse dest -> setting name, for the flags that are settings.
_SETTING_FLAGS = (
    "output",
    "threads",
    "location",
    "api_url",
    "api_key_file",
    "ca_bundle",
    "regex",
    "on_conflict",
    "transfer",
    "max_attempts",
    "poll_interval",
    "summary_interval",
    "log_level",
    "log_dir",
    "refresh_hz",
    "max_bandwidth",
    "on_job_done",
)
_BOOLEAN_FLAGS = {"force": "force", "disable_reporting": "disable_reporting"}


def _flag_settings(args: argparse.Namespace) -> dict[str, Any]:
    flags = {name: getattr(args, name) for name in _SETTING_FLAGS if getattr(args, name)}
    for dest, name in _BOOLEAN_FLAGS.items():
        if getattr(args, dest):
            flags[name] = True
    if args.insecure:
        flags["tls_verify"] = False
    if args.no_md5_cache:
        flags["md5_cache"] = False
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
        _check_combinations(args, specs)
        faults.configure(settings.faults)
        if args.demo:
            return _run_demo(settings, specs, args)
        return _run(settings, specs, None, args)
    except (ConfigError, AuthError) as exc:
        print(f"cdl-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cdl-tui: interrupted", file=sys.stderr)
        return EXIT_SIGINT


def _check_combinations(args: argparse.Namespace, specs: list[JobSpec]) -> None:
    if specs or args.demo:
        return
    if args.exit_when_done:
        raise ConfigError(
            "--exit-when-done needs job IDs (daemon mode runs until stopped), "
            "e.g. cdl-tui --exit-when-done 08285"
        )
    if args.verify or args.dry_run:
        flag = "--verify" if args.verify else "--dry-run"
        raise ConfigError(f"{flag} needs job IDs, e.g. cdl-tui {flag} 08285")


def _print_config(settings: Settings) -> None:
    rows = describe_settings(settings)
    width = max(len(name) for name, _, _ in rows)
    for name, shown, source in rows:
        print(f"{name:<{width}}  {shown}  ({source})")


def _run_demo(settings: Settings, specs: list[JobSpec], args: argparse.Namespace) -> int:
    from .demo import DEMO_OUTPUT, demo_farm

    if settings.output is None:
        settings = _with(settings, output=DEMO_OUTPUT.resolve())
    with demo_farm() as farm:
        settings = _with(settings, api_url=farm.url)
        specs = specs or parse_job_specs(farm.job_ids)
        print(
            f"cdl-tui: demo farm at {farm.url} with jobs {' '.join(farm.job_ids)}; "
            f"downloading into {settings.output}",
            file=sys.stderr,
            flush=True,
        )
        return _run(settings, specs, farm.credentials, args)


def _with(settings: Settings, **changes: Any) -> Settings:
    sources = dict(settings.sources)
    sources.update(dict.fromkeys(changes, "demo"))
    return replace(settings, **changes, sources=sources)


def _run(
    settings: Settings,
    specs: list[JobSpec],
    credentials: Credentials | None,
    args: argparse.Namespace,
) -> int:
    client = client_from(settings, credentials)
    full_screen = _full_screen(args)
    explicit_level = settings.rank_of("log_level") >= 3  # a flag or CDL_LOG_LEVEL
    configure_logging(
        level=settings.log_level,
        log_dir=settings.log_dir or default_state_dir(_environ()) / "log",
        # Log lines on stderr would tear the full screen: they go to the file only.
        stderr_level=None if full_screen else settings.log_level if explicit_level else "WARNING",
    )
    try:
        if args.verify or args.dry_run:
            return _inspect(client, settings, specs, verify=args.verify)
        config = engine_config_from(
            settings,
            specs,
            exit_when_done=args.exit_when_done,
            state_dir=default_state_dir(_environ()),
        )
        _prepare_root(settings, config)
        engine = Engine(client, config)
        return _run_engine(engine, settings, args, full_screen=full_screen)
    finally:
        client.close()


def _prepare_root(settings: Settings, config: EngineConfig) -> None:
    """Check (and create) --output, where every Download goes; without it, a configured
    fallback_dir (the default one is made only if a Download needs it)."""
    if config.output is not None:
        root, what = config.output, f"the output folder, {settings.source_of('output')}"
    elif settings.rank_of("fallback_dir"):
        root, what = (
            config.fallback_dir,
            f"the fallback folder, {settings.source_of('fallback_dir')}",
        )
    else:
        return
    warning = prepare_output_root(root, what, config.permissions)
    if warning:
        log.warning("%s", warning)


def _full_screen(args: argparse.Namespace) -> bool:
    """The Textual app, unless --headless, a pipe or file on stdout, or events on stdout."""
    if args.headless or args.verify or args.dry_run or args.events_jsonl == "-":
        return False
    # Textual draws on stderr; all three must be the terminal.
    return sys.stdout.isatty() and sys.stderr.isatty() and sys.stdin.isatty()


def _run_engine(
    engine: Engine, settings: Settings, args: argparse.Namespace, *, full_screen: bool
) -> int:
    from .run import run_full_screen, run_headless

    events = None
    if args.events_jsonl:
        from .eventlog import EventLog

        try:
            events = EventLog(args.events_jsonl)
        except OSError as exc:
            raise ConfigError(f"cannot write events to {args.events_jsonl}: {exc}") from None
        engine.bus.subscribe(events)
    out: IO[str] = sys.stderr if events is not None and events.to_stdout else sys.stdout
    try:
        if full_screen:
            code = run_full_screen(
                engine,
                refresh_hz=settings.refresh_hz,
                exit_when_done=args.exit_when_done,
                mouse=not args.no_mouse,
                out=out,
            )
        else:
            code = run_headless(engine, summary_interval=settings.summary_interval, out=out)
    finally:
        if events is not None:
            events.close()
    if args.report:
        from cdl_tui.core.run_report import write_report

        try:
            write_report(engine, Path(args.report))
        except OSError as exc:
            print(f"cdl-tui: cannot write the report {args.report}: {exc}", file=sys.stderr)
            code = code or EXIT_FAILED
    if code == EXIT_USAGE:
        print(f"cdl-tui: {engine.stop_reason}", file=sys.stderr)
    return code


def _inspect(client: Any, settings: Settings, specs: list[JobSpec], *, verify: bool) -> int:
    from cdl_tui.core.inspect import check_jobs
    from cdl_tui.core.model.frames import FrameCatalog

    from .summary import sequence_lines, size

    policy = DestinationPolicy(
        output=settings.output,
        fallback=settings.fallback_dir,
        path_map=settings.path_map,
        output_roots=settings.output_roots,
    )
    present = fetch = problems = 0
    present_bytes = fetch_bytes = 0
    catalogs: dict[str, FrameCatalog] = {}  # --verify: each job's files as sequences
    differing: dict[str, list[str]] = {}  # job -> "MD5 DIFFERS  /path" lines
    try:
        for check in check_jobs(
            client, specs, policy, regex=settings.regex, page_size=settings.page_size
        ):
            if isinstance(check, str):
                problems += 1
                print(f"REFUSED  {check}")
                continue
            if check.remote is None:
                problems += 1
                print(f"REFUSED  {check.download.label}: {check.reason}")
                continue
            if verify:
                job = check.download.job_id
                catalog = catalogs.setdefault(job, FrameCatalog(job))
                catalog.listed(check.remote.relative_path, check.remote.size)
                if check.state != "missing":  # on disk, right or wrong
                    catalog.placed(check.remote.relative_path, check.on_disk)
                if check.state not in ("same", "missing"):
                    differing.setdefault(job, []).append(f"{check.state.upper():<13}  {check.dest}")
            if check.ok and not (settings.force and not verify):
                present += 1
                present_bytes += check.remote.size
                if not verify:
                    print(f"PRESENT  {size(check.remote.size):>10}  {check.dest}")
                continue
            fetch += 1
            fetch_bytes += check.remote.size
            if verify:
                problems += 1
            else:
                print(f"FETCH    {size(check.remote.size):>10}  {check.dest}  ({check.state})")
    except CdlError as exc:
        if isinstance(exc, AuthError):
            raise
        print(f"cdl-tui: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if verify:
        for job, catalog in catalogs.items():
            print(f"Job {job}")
            print("\n".join(sequence_lines(catalog.view(), "    ")))
            for line in differing.get(job, []):
                print(f"    {line}")
        print(
            f"cdl-tui: verified {present} files ({size(present_bytes)}); "
            f"{fetch} missing or different ({size(fetch_bytes)})"
        )
        return EXIT_FAILED if problems else EXIT_OK
    print(
        f"cdl-tui: would fetch {fetch} files ({size(fetch_bytes)}); "
        f"{present} already present ({size(present_bytes)})"
    )
    return EXIT_OK


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


if __name__ == "__main__":
    sys.exit(main())
