"""The ``stemserve`` command line: ``separate``, ``models``, ``serve``, ``worker`` and ``triton``.

Exit codes (README, "Exit codes"): 0 done, 1 unexpected failure, 2 usage (flags, options,
model, a missing extra), 3 bad input, 4 stems could not be written, 5 server or backend
failure, 6 some inputs failed and others were separated, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from stemserve import __version__
from stemserve.batch import (
    DEFAULT_TEMPLATE,
    EXIT_USAGE,
    describe,
    exit_code,
    overall_exit_code,
    plan,
    separate_all,
)
from stemserve.core.errors import BackendUnavailableError, StemserveError
from stemserve.core.model_config import MAX_OVERLAP, MIN_OVERLAP
from stemserve.core.presets import PRESETS, stem_names
from stemserve.core.settings import ENV_PREFIX, Settings
from stemserve.pipeline.options import SeparationOptions
from stemserve.preprocess.encode import BIT_DEPTHS, FORMATS, MP3_CBR_KBPS, OUTPUT_SAMPLE_RATES_HZ
from stemserve.progress import Progress

log = logging.getLogger("stemserve")
DEFAULTS = SeparationOptions()  # the one source of the option defaults
SETTING_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}
HELP = argparse.ArgumentDefaultsHelpFormatter
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
EXTRAS = {"grpc": "server", "grpc_health": "server", "prometheus_client": "server", "tritonclient": "triton",
          "nats": "jobs", "boto3": "jobs"}
SERVE_SETTINGS = ("host", "port", "metrics_port", "models", "api_keys_file", "max_songs_in_flight",
                  "max_songs_per_key", "cache_dir", "cache_max_bytes", "tls_cert", "tls_key", "triton_url")


def _setting(text: str, name: str) -> str:
    """Help for a flag that overrides a setting: its default and its variable."""
    default = SETTING_DEFAULTS[name]
    shown = "none" if default in ("", None) else ",".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{text} (default: {shown}; env {ENV_PREFIX}{name.upper()})"


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Flags accepted before and after the subcommand."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    parser.add_argument("--model-repository", metavar="DIR[:DIR...]", default=default(None),
                        help="model repositories to search, in order; an empty entry is the bundled one "
                             "('DIR:' adds DIR before it) (default: the bundled repository; "
                             f"env {ENV_PREFIX}MODEL_REPOSITORY)")
    parser.add_argument("--log-level", default=default("WARNING"), choices=LOG_LEVELS,
                        help="log level on stderr (default: WARNING)")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stemserve", description="Music source separation.")
    parser.add_argument("--version", action="version", version=f"stemserve {__version__}")
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True)

    sep = commands.add_parser("separate", formatter_class=HELP, help="separate songs into stems")
    _common(sep, top=False)
    sep.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="wav, flac, ogg or mp3 files")
    sep.add_argument("-o", "--out", type=Path, default=Path("stems"), help="output folder")
    sep.add_argument("--filename", default=DEFAULT_TEMPLATE,
                     help="where each stem goes inside the output folder: {track} (the input's name without "
                          "extension), {stem}, {ext}, {input_ext}, {index} (1, 2, ... in the order given)")
    sep.add_argument("--stems", type=int, default=DEFAULTS.stems, choices=sorted(PRESETS),
                     help="2: vocals + instrumental; 4: vocals, drums, bass, other; 5: + piano")
    sep.add_argument("--two-stems", metavar="STEM", default=DEFAULTS.two_stems,
                     help="one stem of the model and the rest (no_STEM), e.g. drums; vocals gives vocals + "
                          "instrumental")
    sep.add_argument("--format", default=DEFAULTS.format, choices=list(FORMATS), help="stem file format")
    sep.add_argument("--bit-depth", default=DEFAULTS.bit_depth, choices=list(BIT_DEPTHS),
                     help="wav/flac sample format")
    sep.add_argument("--mp3-bitrate", default=DEFAULTS.mp3_bitrate, metavar="KBPS|vN",
                     help=f"mp3 quality: a constant bitrate {list(MP3_CBR_KBPS)} or a VBR quality v0 (best) - v9")
    sep.add_argument("--sample-rate", type=int, choices=list(OUTPUT_SAMPLE_RATES_HZ),
                     help="output rate; None: the input's own when allowed, else 44100")
    sep.add_argument("--no-normalize", action="store_true", help="feed the model the input's own level")
    sep.add_argument("--overlap", type=float, default=DEFAULTS.overlap,
                     help=f"window overlap {MIN_OVERLAP}-{MAX_OVERLAP}; None: the model's default")
    sep.add_argument("--model", default=DEFAULTS.model, help="a model of the model repository")
    sep.add_argument("--server", metavar="HOST:PORT", help="separate on a stemserve server (the client)")
    sep.add_argument("--timeout", type=float, metavar="SECONDS", help="with --server: the deadline of each song")
    sep.add_argument("--no-progress", action="store_true", help="no progress on stderr")

    models = commands.add_parser("models", formatter_class=HELP,
                                 help="list the installed models; available and pull: published ones")
    _common(models, top=False)
    kinds = models.add_subparsers(dest="models_command")
    kinds.add_parser("list", formatter_class=HELP, help="the models of the repositories (the default)")
    from stemserve.export.cli import add_models_commands  # light: the catalogue, no torch

    add_models_commands(kinds)

    serve = commands.add_parser("serve", help="run the gRPC service (the server extra)")  # defaults: settings
    _common(serve, top=False)
    serve.add_argument("--host", help=_setting("address to bind", "host"))
    serve.add_argument("--port", type=int, help=_setting("gRPC port (0: a free one)", "port"))
    serve.add_argument("--metrics-port", type=int, help=_setting("Prometheus /metrics port (0: a free one)",
                                                                 "metrics_port"))
    serve.add_argument("--models", help=_setting("comma-separated models to serve (empty: every model)", "models"))
    serve.add_argument("--api-keys", dest="api_keys_file", type=Path,
                       help=_setting("file of hashed API keys: turns auth on", "api_keys_file"))
    serve.add_argument("--max-songs-in-flight", type=int,
                       help=_setting("songs separated at once, all callers", "max_songs_in_flight"))
    serve.add_argument("--max-songs-per-key", type=int,
                       help=_setting("songs separated at once per API key", "max_songs_per_key"))
    serve.add_argument("--cache-dir", type=Path, help=_setting("result cache folder", "cache_dir"))
    serve.add_argument("--cache-max-bytes", type=int, help=_setting("result cache bound (0: no cache)",
                                                                    "cache_max_bytes"))
    serve.add_argument("--tls-cert", type=Path, help=_setting("PEM certificate chain: TLS on (with --tls-key)",
                                                              "tls_cert"))
    serve.add_argument("--tls-key", type=Path, help=_setting("PEM private key", "tls_key"))
    serve.add_argument("--triton", dest="triton_url", metavar="HOST:PORT[,HOST:PORT...]",
                       help=_setting("run the models on Triton: one server, or a fleet whose ready servers "
                                     "share each song's windows", "triton_url"))
    from stemserve.jobs import cli as jobs_cli  # light: argparse and settings

    jobs_cli.add_serve_flags(serve)
    worker = jobs_cli.add_commands(commands)
    _common(worker, top=False)

    triton = commands.add_parser("triton", formatter_class=HELP,
                                 help="serve the repository's CPU variant on Triton (the triton extra)")
    _common(triton, top=False)
    triton.add_argument("--grpc-port", type=int, default=8001, help="Triton gRPC port (0: a free one)")
    triton.add_argument("--http-port", type=int, default=8000, help="Triton HTTP port (0: a free one)")
    triton.add_argument("--metrics-port", type=int, default=8002, help="Triton Prometheus /metrics port (0: a free one)")
    triton.add_argument("--build-dir", type=Path, help="folder of the generated CPU variant and backend "
                                                       "(default: build/triton in the checkout)")
    return parser


def _options(args: argparse.Namespace) -> dict[str, object]:
    return {"stems": 2 if args.two_stems else args.stems, "format": args.format, "bit_depth": args.bit_depth,
            "sample_rate_hz": args.sample_rate, "normalize": not args.no_normalize, "model": args.model,
            "overlap": args.overlap, "mp3_bitrate": args.mp3_bitrate, "two_stems": args.two_stems}


def _separate(args: argparse.Namespace, settings: Settings) -> int:
    fields = _options(args)
    options = SeparationOptions(**fields)  # validated here, in both modes
    names = stem_names(options.stems, options.two_stems)
    targets = plan(args.inputs, args.out, args.filename, names, options.encode.extension)
    if args.server:
        run_one = _remote(args, settings, fields)
    else:
        from stemserve.pipeline.separator import Separator

        separator = Separator(settings=settings, **fields)
        run_one = lambda source, folder, progress: separator.separate_to_files(source, folder, progress=progress)
    codes = []
    for line, code in separate_all(args.inputs, args.out, targets, run_one,
                                   lambda source: Progress(source.name, enabled=not args.no_progress)):
        if code:
            sys.stderr.write(f"stemserve: error: {line['source']}: {line['error']}\n")
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        codes.append(code)
    return overall_exit_code(codes)


def _remote(args: argparse.Namespace, settings: Settings, fields: dict[str, object]):
    """``--server``: the same files and summary, made by a stemserve server. The API key is
    the ``api_key`` setting; ``server_ca`` (a PEM file) turns TLS on."""
    from stemserve.client import RemoteError, StemserveClient

    ca = settings.server_ca.read_bytes() if settings.server_ca is not None else None

    def run_one(source: Path, folder: Path, progress) -> object:
        try:
            with StemserveClient(args.server, api_key=settings.api_key or None, root_certificates=ca) as client:
                return client.separate(source, folder, progress=progress, timeout_s=args.timeout, **fields)
        except RemoteError as exc:
            raise BackendUnavailableError(str(exc)) from exc

    return run_one


def _models(settings: Settings) -> int:
    from stemserve.core.model_config import load_model, require_models

    listing = []
    for name in require_models(settings.model_repository):
        spec = load_model(settings.model_repository, name).spec
        listing.append({"name": spec.name, "stems": list(spec.stems), "model_version": spec.model_version,
                        "sample_rate_hz": spec.sample_rate_hz, "segment_samples": spec.segment_samples,
                        "architecture": spec.architecture, "license": spec.license})
    sys.stdout.write(json.dumps(listing, indent=2) + "\n")
    return 0


def _run(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name, None) for name in SERVE_SETTINGS}
    settings = Settings.load({"model_repository": args.model_repository, **overrides})
    if args.command == "worker" or (args.command == "serve" and args.jobs):
        from stemserve.jobs.cli import run as run_jobs

        return run_jobs(args, settings)
    if args.command == "serve":
        import asyncio

        from stemserve.server.app import serve

        asyncio.run(serve(settings))
        return 0
    if args.command == "triton":
        from stemserve.server.triton.process import run_command

        ports = {"grpc_port": args.grpc_port, "http_port": args.http_port, "metrics_port": args.metrics_port}
        return run_command(settings.model_repository, args.build_dir, **ports)
    if args.command == "separate":
        return _separate(args, settings)
    if args.models_command in ("available", "pull"):
        from stemserve.export.cli import run_models_command

        return run_models_command(args, settings)
    return _models(settings)


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return _run(args)
    except StemserveError as exc:
        sys.stderr.write(f"stemserve: error: {exc}\n")
        return exit_code(exc)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        sys.stderr.write(f"stemserve: error: {args.command} needs the {extra} extra: "
                         f"pip install 'stemserve[{extra}]' (missing module {exc.name})\n")
        return EXIT_USAGE
    except BrokenPipeError:  # the reader of stdout went away (| head): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("stemserve: interrupted\n")
        return 130
    except OSError as exc:
        sys.stderr.write(f"stemserve: error: {describe(exc)}\n")
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
