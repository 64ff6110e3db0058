"""``stemserve separate --server HOST:PORT``: the CLI's remote mode, same files and summary
as the in-process mode. The API key comes from the ``api_key`` setting
(``STEMSERVE_API_KEY``); ``server_ca`` (``STEMSERVE_SERVER_CA``, a PEM file) turns TLS on."""

from __future__ import annotations

from pathlib import Path

from client.client import ProgressFn, StemserveClient
from stemserve.options import SeparationOptions
from stemserve.settings import Settings


def separate_remote(server: str, input_path: Path, out_dir: Path, options: SeparationOptions, *,
                    progress: ProgressFn | None = None, settings: Settings | None = None) -> dict[str, object]:
    settings = Settings.load() if settings is None else settings
    ca = settings.server_ca.read_bytes() if settings.server_ca is not None else None
    with StemserveClient(server, api_key=settings.api_key or None, root_certificates=ca) as client:
        return client.separate(Path(input_path), Path(out_dir), options, progress=progress).summary
