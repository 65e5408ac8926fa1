"""`audio-engine`: one entry point for every way of running the engine.

audio-engine serve                      # API + bridge + local Ray, all in one process
audio-engine api | bridge               # the parts alone, for docker-compose / scale-out
audio-engine process in.wav -o out.wav --chain chain.json   # local, no broker, no Ray
audio-engine analyze in.wav [--json]   # true peak, loudness (integrated, max, range), levels
audio-engine submit in.wav --chain chain.json --server http://127.0.0.1:8000
audio-engine keys create --name NAME [--admin] | keys list | keys revoke NAME-OR-ID

The services (`serve`, `api`, `bridge`) log JSON lines at INFO. The commands a person types
(`process`, `submit`, `keys`) print only their result on stdout and errors on stderr: no log
records unless `-v` or `--log-level` asks for them. Exit codes are in `cli/exits.py`.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

from jobs.formats import SampleFormat, containers_text
from jobs.logs import configure_logging
from jobs.settings import Settings

SERVICES = ("serve", "api", "bridge")
LOCAL = ("process", "analyze")
"""Commands that run numba kernels in this process, with no thread, socket or service left
when they return: `run` starts them with the collector paused and ends them without the
interpreter's teardown."""
_SUBTYPES = ", ".join(s.value for s in SampleFormat)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audio-engine",
        description="Distributed, event-driven audio processing engine.",
        epilog="exit codes: 0 done, 1 other error, 2 usage, 3 bad input, "
        "4 server or broker unreachable, 5 job failed",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="DEBUG, INFO, WARNING... (default: INFO for services, none for the other commands)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show log records (INFO) on stderr"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="API + bridge + a local Ray in one process")
    api = sub.add_parser("api", help="the GraphQL API alone")
    bridge = sub.add_parser("bridge", help="the RabbitMQ -> Ray bridge alone")
    for p in (serve, api):
        p.add_argument("--host", help="listen address (default AUDIO_ENGINE_API_HOST)")
        p.add_argument("--port", type=int, help="listen port (default AUDIO_ENGINE_API_PORT)")
        p.add_argument(
            "--dev",
            action="store_true",
            help="INSECURE: no API keys, everything visible to everyone (local development)",
        )
    for p in (serve, bridge):
        p.add_argument(
            "--ray-address",
            help="'' starts a local Ray; 'auto' or 'ray://host:10001' joins a cluster",
        )
        p.add_argument("--pool-size", type=int, help="actors in the pool (0: one per CPU)")

    process = sub.add_parser("process", help="run a chain on a local file, no broker or Ray")
    process.add_argument("input", type=Path)
    process.add_argument("-o", "--output", type=Path, required=True)
    process.add_argument("--chain", type=Path, required=True, help="JSON list, as JobInput.effects")
    process.add_argument(
        "--format", default=None, help=f"{containers_text()} (default: from -o's extension)"
    )
    process.add_argument("--subtype", default=None, help=f"{_SUBTYPES} (default: the format's)")
    process.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    process.add_argument(
        "--edits", type=Path, default=None, help="write what was cut (Job.edits) as JSON here"
    )

    analyze = sub.add_parser("analyze", help="measure a file: loudness, true peak, levels")
    analyze.add_argument("input", type=Path)
    analyze.add_argument("--json", action="store_true", help="one JSON object (null: -inf)")

    submit = sub.add_parser("submit", help="upload, process on a server, watch, download")
    submit.add_argument("input", type=Path)
    submit.add_argument("--chain", type=Path, required=True)
    submit.add_argument("--server", default="http://127.0.0.1:8000")
    submit.add_argument("-o", "--output", type=Path, help="where to save (default: next to input)")
    submit.add_argument("--format", default="WAV", help=f"{containers_text()} (default: WAV)")
    submit.add_argument("--subtype", default=None, help=f"{_SUBTYPES} (default: the format's)")
    submit.add_argument("--api-key", default=None, help="API key (default: AUDIO_ENGINE_API_KEY)")
    submit.add_argument("--quiet", action="store_true", help="no progress bar")
    submit.add_argument("--json", action="store_true", help="print the result as one JSON object")
    submit.add_argument(
        "--edits", type=Path, default=None, help="write what was cut (Job.edits) as JSON here"
    )

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="make a key and print it once")
    create.add_argument("--name", required=True, help="unique name of the key")
    create.add_argument("--admin", action="store_true", help="sees and manages everything")
    create.add_argument("--owner", default=None, help="owner of what it creates (default: name)")
    create.add_argument("--json", action="store_true", help="print the key as one JSON object")
    listing = keys_sub.add_parser(
        "list", help="every key, revoked ones too (never the keys themselves)"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("which", help="the key's name or id")
    return parser


def main(argv: list[str] | None = None) -> int:
    return _dispatch(_parser().parse_args(argv))


def run() -> NoReturn:
    """The `audio-engine` program (`main` is for callers in Python, such as tests).

    For `process` and `analyze` the fixed cost of a run is mostly numba's start (importing it and
    loading its registries: some 100,000 objects that live until the end) and, once the output
    is written, the interpreter freeing those objects one by one. Measured on a 1 s file
    (README, Benchmarks): the cyclic collector traversing them while they are created costs
    about 0.2 s and the teardown about 0.4 s, against about 1 s for the rest. So the start-up
    runs with the collector paused, and its objects are then frozen out of later collections
    (`gc.freeze`, as for a pre-fork server); the collector is on while the audio is processed.
    At the end the exit handlers run (logging's flush among them) and the streams are
    flushed, then the process leaves with `os._exit`: its files are closed by then, and there
    is nothing left that the OS does not free at once. If a thread the ordinary exit would wait
    for still runs (daemon threads, such as tqdm's monitor, it would not), or a stream cannot be
    flushed, the ordinary exit is taken.
    """
    args = _parser().parse_args()
    if args.command not in LOCAL:
        sys.exit(_dispatch(args))
    gc.disable()
    code = _dispatch(args)
    main_thread = threading.main_thread()
    if all(t.daemon or t is main_thread for t in threading.enumerate()):
        atexit._run_exitfuncs()
        atexit._clear()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            sys.exit(code)  # the ordinary exit reports the failed flush
        os._exit(code)
    sys.exit(code)


def _started() -> None:
    """For the LOCAL commands, once their code is imported and before the audio: when `run`
    paused the collector, numba is started now, its objects and the rest of the start-up's are
    frozen out of the collector's generations, and the collector resumes. Under `main` (the
    collector on) nothing happens: numba starts at the first kernel call, as ever."""
    if gc.isenabled():
        return
    from dsp.jit import start

    start()
    gc.freeze()
    gc.enable()


def _dispatch(args: argparse.Namespace) -> int:
    configure_logging(_log_level(args))
    settings = Settings()
    overrides = {
        "api_host": getattr(args, "host", None),
        "api_port": getattr(args, "port", None),
        "ray_address": getattr(args, "ray_address", None),
        "pool_size": getattr(args, "pool_size", None),
        "auth_enabled": False if getattr(args, "dev", False) else None,
    }
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})

    if args.command in SERVICES:
        from cli import services

        return services.run(args.command, settings)
    if args.command == "process":
        from cli import local

        _started()
        return local.process(
            args.input,
            args.output,
            args.chain,
            args.format,
            args.subtype,
            settings,
            args.quiet,
            edits_path=args.edits,
        )
    if args.command == "analyze":
        from cli import local

        _started()
        return local.analyze(args.input, args.json, settings)
    if args.command == "keys":
        from cli import keys

        return keys.run(
            settings,
            args.action,
            name=getattr(args, "name", None),
            admin=getattr(args, "admin", False),
            owner=getattr(args, "owner", None),
            which=getattr(args, "which", None),
            as_json=getattr(args, "json", False),
        )
    if args.command == "submit":
        from cli import client

        args.api_key = args.api_key or settings.api_key or None
        return client.submit(args)
    return 2


def _log_level(args: argparse.Namespace) -> str:
    if args.log_level:
        return str(args.log_level)
    if args.verbose or args.command in SERVICES:
        return "INFO"
    # A person's command: its output is its result; log records would only bury it.
    return "CRITICAL"


if __name__ == "__main__":
    run()
