"""The ``stemserve`` command line: ``separate``, ``models``, ``serve`` and ``triton``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from stemserve import __version__
from stemserve.core.errors import BackendUnavailableError, StemserveError
from stemserve.core.model_config import MAX_OVERLAP, MIN_OVERLAP
from stemserve.core.presets import PRESETS
from stemserve.core.settings import Settings
from stemserve.pipeline.options import SeparationOptions
from stemserve.preprocess.encode import BIT_DEPTHS, FORMATS, MP3_CBR_KBPS, OUTPUT_SAMPLE_RATES_HZ

log = logging.getLogger("stemserve")
DEFAULTS = SeparationOptions()  # the one source of the option defaults
HELP = argparse.ArgumentDefaultsHelpFormatter


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stemserve", description="Music source separation.", formatter_class=HELP)
    parser.add_argument("--version", action="version", version=f"stemserve {__version__}")
    parser.add_argument("--model-repository", metavar="DIR[:DIR...]",
                        help="model repositories to search, in order; an empty entry is the bundled one "
                             "('DIR:' adds DIR before it; default: the bundled repository)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)

    sep = commands.add_parser("separate", formatter_class=HELP, help="separate a song into stems")
    sep.add_argument("input", type=Path, help="wav, flac, ogg or mp3 file")
    sep.add_argument("-o", "--out", type=Path, default=Path("stems"), help="output folder")
    sep.add_argument("--stems", type=int, default=DEFAULTS.stems, choices=sorted(PRESETS),
                     help="2: vocals + instrumental; 4: vocals, drums, bass, other; 5: + piano")
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
    sep.add_argument("--server", metavar="HOST:PORT", help="separate on a stemserve server")
    sep.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    commands.add_parser("models", formatter_class=HELP, help="list the models of the repository")

    serve = commands.add_parser("serve", formatter_class=HELP, help="run the gRPC service (needs the server extra)")
    serve.add_argument("--host", help="address to bind (default: every interface)")
    serve.add_argument("--port", type=int, help="gRPC port (0: a free one)")
    serve.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: a free one)")
    serve.add_argument("--models", help="comma-separated models to serve (default: every model)")
    serve.add_argument("--api-keys", dest="api_keys_file", type=Path, help="file of hashed API keys: turns auth on")
    serve.add_argument("--max-songs-in-flight", type=int, help="global limit on songs being separated")
    serve.add_argument("--max-songs-per-key", type=int, help="limit per API key")
    serve.add_argument("--cache-dir", type=Path, help="result cache folder")
    serve.add_argument("--cache-max-bytes", type=int, help="result cache size bound (0: no cache)")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain: turns TLS on (with --tls-key)")
    serve.add_argument("--tls-key", type=Path, help="PEM private key")
    serve.add_argument("--triton", dest="triton_url", metavar="HOST:PORT", help="run the models on this Triton server")

    triton = commands.add_parser("triton", formatter_class=HELP, help="serve the repository's CPU variant on Triton (needs the triton extra)")
    triton.add_argument("--model-repository", type=Path, default=argparse.SUPPRESS, help="source repository")
    triton.add_argument("--grpc-port", type=int, help="Triton gRPC port (0: a free one)")
    triton.add_argument("--http-port", type=int, help="Triton HTTP port (0: a free one)")
    triton.add_argument("--metrics-port", type=int, help="Triton Prometheus /metrics port (0: a free one)")
    triton.add_argument("--build-dir", type=Path, help="folder of the generated CPU variant and backend")
    return parser


SERVE_SETTINGS = (
    "host",
    "port",
    "metrics_port",
    "models",
    "api_keys_file",
    "max_songs_in_flight",
    "max_songs_per_key",
    "cache_dir",
    "cache_max_bytes",
    "tls_cert",
    "tls_key",
    "triton_url",
)


class ProgressBar:
    """A one-line bar on stderr, redrawn on each update."""

    def __init__(self, label: str, enabled: bool = True, width: int = 30) -> None:
        self.label, self.enabled, self.width = label, enabled, width

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = self.width * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{total} windows{end}")
        sys.stderr.flush()


def _separate(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    fields = {
        "stems": args.stems, "format": args.format, "bit_depth": args.bit_depth, "sample_rate_hz": args.sample_rate,
        "normalize": not args.no_normalize, "model": args.model, "overlap": args.overlap,
        "mp3_bitrate": args.mp3_bitrate,
    }
    options = SeparationOptions(**fields)  # validated here, in both modes
    bar = ProgressBar(args.input.name, enabled=not args.no_progress)
    if args.server:
        return _separate_remote(args, settings, fields, bar)
    from stemserve.pipeline.separator import Separator

    separator = Separator(settings=settings, **dataclasses.asdict(options))
    return separator.separate_to_files(args.input, args.out, progress=bar).summary()


def _separate_remote(args: argparse.Namespace, settings: Settings, fields: dict[str, object],
                     bar: ProgressBar) -> dict[str, object]:
    """``--server``: the same files and summary, made by a stemserve server. The API key is
    the ``api_key`` setting; ``server_ca`` (a PEM file) turns TLS on."""
    from stemserve.client import RemoteError, StemserveClient

    ca = settings.server_ca.read_bytes() if settings.server_ca is not None else None
    try:
        with StemserveClient(args.server, api_key=settings.api_key or None, root_certificates=ca) as client:
            return client.separate(args.input, args.out, progress=bar, **fields).summary()
    except RemoteError as exc:
        raise BackendUnavailableError(str(exc)) from exc


def _models(settings: Settings) -> list[dict[str, object]]:
    from stemserve.core.model_config import load_model, require_models

    names = require_models(settings.model_repository)
    listing = []
    for name in names:
        spec = load_model(settings.model_repository, name).spec
        listing.append(
            {
                "name": spec.name,
                "stems": list(spec.stems),
                "model_version": spec.model_version,
                "sample_rate_hz": spec.sample_rate_hz,
                "segment_samples": spec.segment_samples,
                "architecture": spec.architecture,
                "license": spec.license,
            }
        )
    return listing


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        overrides = {name: getattr(args, name, None) for name in SERVE_SETTINGS}
        settings = Settings.load({"model_repository": args.model_repository, **overrides})
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
            output: object = _separate(args, settings)
        else:
            output = _models(settings)
    except StemserveError as exc:
        sys.stderr.write(f"stemserve: error: {exc}\n")
        return 2
    json.dump(output, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
