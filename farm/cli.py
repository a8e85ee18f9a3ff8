"""`cdl-farm`: build a reference farm, and serve it.

    cdl-farm generate DATA_DIR [--jobs N --tasks M --files K --size SIZE --location TAG
                                --seed S]
    cdl-farm serve DATA_DIR [--host 127.0.0.1] [--port 0] [--token TOKEN] [--faults SPEC]
                            [--id-style number|string] [--expired-style gcs|s3|gone] ...

`serve` prints its base URL as the first line on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cdl_tui.core.model.units import parse_size

from .app import FarmOptions
from .dialect import EXPIRED_STYLES, ID_STYLES, Dialect
from .faults import parse_faults
from .generate import FarmSpec, generate_farm, read_token


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdl-farm", description="The cdl-tui reference render farm."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="build (or extend) a farm in DATA_DIR")
    gen.add_argument("data_dir", type=Path)
    gen.add_argument("--jobs", type=_count, default=3, help="jobs to add (default 3)")
    gen.add_argument("--tasks", type=_count, default=8, help="tasks per job (default 8)")
    gen.add_argument("--files", type=_count, default=3, help="files per task (default 3)")
    gen.add_argument(
        "--size", type=_size, default=4 << 20, help="beauty frame size, e.g. 4MiB (default)"
    )
    gen.add_argument(
        "--location",
        action="append",
        default=[],
        help="location tag for the jobs (repeat to alternate between tags)",
    )
    gen.add_argument("--seed", type=int, default=1, help="seed for names, sizes and content")
    gen.add_argument(
        "--uniform",
        action="store_true",
        help="every file exactly --size; no empty files, no tasks without files",
    )
    gen.add_argument(
        "--materialize",
        action="store_true",
        help="also write the files to DATA_DIR/files/<job>/<task>/<path> (for a web server)",
    )
    gen.add_argument(
        "--output-root",
        default=FarmSpec.output_root,
        help="root of the jobs' output_dir on the 'submitting machine'",
    )

    serve = commands.add_parser("serve", help="serve the farm in DATA_DIR over HTTP")
    serve.add_argument("data_dir", type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_count, default=0, help="0 picks a free port (default)")
    serve.add_argument(
        "--token",
        help="bearer token to accept (default: $CDL_FARM_TOKEN, else DATA_DIR/token)",
    )
    serve.add_argument("--faults", help="fault injection spec, e.g. 503=0.05,cut=0.05")
    serve.add_argument(
        "--lease-timeout", type=_seconds, default=120.0, help="seconds (default 120)"
    )
    serve.add_argument(
        "--url-ttl", type=_seconds, default=3600.0, help="file URL lifetime, seconds"
    )
    serve.add_argument(
        "--token-ttl", type=_seconds, default=3600.0, help="access token lifetime, seconds"
    )
    serve.add_argument(
        "--files-url",
        metavar="BASE",
        help="hand out file URLs BASE/<job>/<task>/<path> (a web server over "
        "DATA_DIR/files of a --materialize farm) instead of serving the bytes",
    )
    serve.add_argument(
        "--id-style",
        choices=ID_STYLES,
        default="number",
        help="download_id as a JSON number (as the vendor's farm sends it; default) or string",
    )
    serve.add_argument(
        "--numeric-job-ids",
        action="store_true",
        help="send job_id and task_id as JSON numbers, unpadded",
    )
    serve.add_argument(
        "--expired-style",
        choices=EXPIRED_STYLES,
        default="gcs",
        help="how storage refuses an expired URL: gcs (400 ExpiredToken; default), "
        "s3 (403 AccessDenied) or gone (410)",
    )
    serve.add_argument(
        "--ok-status",
        type=int,
        choices=(200, 201),
        default=201,
        help="status of a successful API call (default 201, as the vendor's)",
    )
    serve.add_argument(
        "--max-page",
        type=_count,
        default=1000,
        help="the most Downloads in one listing page, whatever the client asks (default 1000)",
    )
    serve.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        spec = FarmSpec(
            jobs=args.jobs,
            tasks=args.tasks,
            files=args.files,
            size=args.size,
            locations=tuple(args.location),
            seed=args.seed,
            output_root=args.output_root,
            uniform=args.uniform,
            materialize=args.materialize,
        )
        for job_id in generate_farm(args.data_dir, spec):
            print(job_id)
        return 0
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    from .server import FarmServer  # uvicorn is only needed to serve

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        faults = parse_faults(args.faults)
    except ValueError as exc:
        print(f"cdl-farm: {exc}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("CDL_FARM_TOKEN")
    if not token:
        try:
            token = read_token(args.data_dir)
        except OSError:
            print(
                f"cdl-farm: no farm in {args.data_dir} (run `cdl-farm generate` first) "
                "and no --token",
                file=sys.stderr,
            )
            return 2
    options = FarmOptions(
        token=token,
        lease_timeout=args.lease_timeout,
        url_ttl=args.url_ttl,
        token_ttl=args.token_ttl,
        faults=faults,
        files_url=args.files_url.rstrip("/") if args.files_url else None,
        dialect=Dialect(
            ids=args.id_style,
            numeric_job_ids=args.numeric_job_ids,
            expired=args.expired_style,
            ok_status=args.ok_status,
            max_page=max(1, args.max_page),
        ),
    )
    try:
        server = FarmServer(args.data_dir, options, host=args.host, port=args.port)
    except (ValueError, OSError) as exc:
        print(f"cdl-farm: {exc}", file=sys.stderr)
        return 2

    def announce(url: str) -> None:
        print(url, flush=True)

    stopped_by = server.run(on_ready=announce)
    return 128 + stopped_by if stopped_by else 0


if __name__ == "__main__":
    sys.exit(main())
