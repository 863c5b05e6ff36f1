"""Access control of the local server: the bearer token and the ``Host`` header check.

The server is a local process that runs a model and reads files, so it only answers callers
that hold a secret token (``Authorization: Bearer TOKEN``), and only requests whose ``Host``
header names the address it is bound to (a defence against DNS rebinding: a web page on
``evil.example`` that re-resolves its name to 127.0.0.1 still sends ``Host: evil.example``).

Where the token comes from, in order:

1. the environment variable ``POSEDIFF_TOKEN`` (when set and not empty);
2. the token file: ``--token-file``, else ``POSEDIFF_TOKEN_FILE``, else
   ``~/.config/posediff/token``. An existing file is reused; otherwise a random token is made
   once and written there, readable only by the user (mode 0600, folder 0700).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

TOKEN_ENV = "POSEDIFF_TOKEN"
TOKEN_FILE_ENV = "POSEDIFF_TOKEN_FILE"
DEFAULT_TOKEN_FILE = Path("~/.config/posediff/token")
#: Tokens shorter than this are accepted but the server warns (guessable).
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class TokenSource:
    """The server's token and where it came from.

    Attributes:
        token: the secret (never logged).
        path: the token file, or None when the token came from ``POSEDIFF_TOKEN``.
        created: True when this call generated the token and wrote the file.
    """

    token: str
    path: Path | None
    created: bool = False

    def describe(self) -> str:
        """Where the token is, for the start-up line (never the token itself)."""
        return f"token from ${TOKEN_ENV}" if self.path is None else f"token file {self.path}"


def token_file_path(cli_value: str | os.PathLike | None = None) -> Path:
    """The token file: ``cli_value``, else ``$POSEDIFF_TOKEN_FILE``, else ``~/.config/posediff/token``."""
    raw = cli_value or os.environ.get(TOKEN_FILE_ENV) or DEFAULT_TOKEN_FILE
    return Path(raw).expanduser().resolve()


def resolve_token(token_file: str | os.PathLike | None = None) -> TokenSource:
    """The server token: ``$POSEDIFF_TOKEN``, else read or create the token file.

    Args:
        token_file: explicit token file (``--token-file``); see :func:`token_file_path`.
    Returns:
        :class:`TokenSource`.
    Raises:
        OSError: the token file cannot be read or created (message names the path).
        ValueError: the token file exists but is not a regular file.
    """
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return TokenSource(env, None)
    path = token_file_path(token_file)
    if path.exists():
        if not path.is_file():
            raise ValueError(f"{path}: token file is not a regular file; remove it or pass --token-file")
        token = path.read_text(encoding="utf-8").strip()
        if token:
            _restrict(path)
            return TokenSource(token, path)
    return TokenSource(_write_new_token(path), path, created=True)


def _write_new_token(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    return token


def _restrict(path: Path) -> None:
    """Make an existing token file readable by its owner only (best effort on foreign files)."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(path, 0o600)
    except OSError:
        pass


def bearer_ok(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <token>`` (constant-time compare)."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` header values the server answers.

    Accepted: ``localhost``, ``127.0.0.1``, ``[::1]`` (any IP literal when bound to a
    non-loopback address: an IP literal cannot be re-pointed by DNS), the bound host itself and
    names in ``extra``, each with the bound port or without a port.

    Attributes:
        bind_host: the address the server is bound to.
        port: the bound port.
        extra: further host names allowed (``--allow-host``), lower case.
    """

    bind_host: str
    port: int
    extra: frozenset[str] = frozenset()

    def allows(self, header: str | None) -> bool:
        """Whether a ``Host`` header value is acceptable (None or empty: no)."""
        if not header:
            return False
        name, port = split_host_header(header)
        if name is None or (port is not None and port != self.port):
            return False
        if name in ("localhost", self.bind_host.strip("[]").lower()) or name in self.extra:
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        return ip.is_loopback or not is_loopback(self.bind_host)


def split_host_header(header: str) -> tuple[str | None, int | None]:
    """``"Example.com:8765"`` -> ``("example.com", 8765)``; ``"[::1]:80"`` -> ``("::1", 80)``.

    Returns ``(None, None)`` for a malformed value.
    """
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        if end < 0:
            return None, None
        name, rest = h[1:end], h[end + 1 :]
        if rest and not rest.startswith(":"):
            return None, None
        port_s = rest[1:] if rest else None
    else:
        name, sep, port_s = h.rpartition(":")
        if not sep:
            name, port_s = h, None
        if ":" in name:  # bare IPv6 without brackets is not a valid Host header
            return None, None
    if not name:
        return None, None
    if port_s is None:
        return name, None
    if not port_s.isdigit() or len(port_s) > 5:
        return None, None
    return name, int(port_s)
