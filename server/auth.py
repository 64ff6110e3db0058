"""API keys: ``authorization: Bearer KEY`` metadata checked against hashed keys from a file.

The key file holds one key per line, ``NAME sha256:HEXDIGEST``; blank lines and lines
starting with ``#`` are ignored. Only digests are stored, so the file reveals no key. Make
a new key and its line with::

    python -m stemserve.server.auth NAME >> keys.txt     # prints the key itself on stderr
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

from stemserve.core.errors import AuthenticationError, InvalidOptionError

ANONYMOUS = None  # the caller's key name when authentication is off
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_.@-]+)\s+sha256:(?P<digest>[0-9a-f]{64})$")
_BEARER = "bearer "


def hash_api_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """Maps a presented key to its name; ``ApiKeys.disabled()`` lets every caller in."""

    def __init__(self, digests: dict[str, str] | None) -> None:
        self._names_by_digest = digests  # hex digest -> key name; None: authentication off

    @classmethod
    def disabled(cls) -> ApiKeys:
        return cls(None)

    @classmethod
    def load(cls, path: Path) -> ApiKeys:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise InvalidOptionError(f"api_keys_file must be a readable file, got {str(path)!r} ({exc})") from exc
        digests: dict[str, str] = {}
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _LINE.match(line)
            if match is None:
                raise InvalidOptionError(
                    f"{path}:{number}: expected 'NAME sha256:<64 hex digits>', got {line[:40]!r}"
                )
            digests[match["digest"]] = match["name"]
        if not digests:
            raise InvalidOptionError(f"{path}: expected at least one key line, got none")
        return cls(digests)

    @property
    def enabled(self) -> bool:
        return self._names_by_digest is not None

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
        """The caller's key name (None when authentication is off); AuthenticationError
        when the ``authorization`` metadata is missing, malformed or names no known key."""
        if self._names_by_digest is None:
            return ANONYMOUS
        values = [v for k, v in (metadata or ()) if k.lower() == "authorization"]
        if not values:
            raise AuthenticationError("expected 'authorization: Bearer <API key>' metadata, got none")
        value = values[0].decode() if isinstance(values[0], bytes) else values[0]
        if not value.lower().startswith(_BEARER) or not value[len(_BEARER) :].strip():
            raise AuthenticationError("expected 'authorization: Bearer <API key>', got another scheme")
        digest = hash_api_key(value[len(_BEARER) :].strip()).removeprefix("sha256:")
        for known, name in self._names_by_digest.items():
            if hmac.compare_digest(known, digest):
                return name
        raise AuthenticationError("the API key is not valid: expected one of the server's keys")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not re.fullmatch(r"[A-Za-z0-9_.@-]+", args[0]):
        sys.stderr.write("usage: python -m stemserve.server.auth NAME   (letters, digits, _ . @ -)\n")
        return 2
    key = secrets.token_urlsafe(32)
    sys.stdout.write(f"{args[0]} {hash_api_key(key)}\n")
    sys.stderr.write(f"API key for {args[0]} (shown once): {key}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
