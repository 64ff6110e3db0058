"""``stemserve separate --server HOST:PORT``: the CLI's remote mode, same files and summary
as the in-process mode. The API key comes from the ``api_key`` setting
(``STEMSERVE_API_KEY``) unless given."""

from __future__ import annotations

from pathlib import Path

from client.client import ProgressFn, StemserveClient
from stemserve.options import SeparationOptions
from stemserve.settings import Settings


def separate_remote(server: str, input_path: Path, out_dir: Path, options: SeparationOptions, *,
                    progress: ProgressFn | None = None, api_key: str | None = None) -> dict[str, object]:
    key = Settings.load().api_key if api_key is None else api_key
    with StemserveClient(server, api_key=key or None) as client:
        return client.separate(Path(input_path), Path(out_dir), options, progress=progress).summary
