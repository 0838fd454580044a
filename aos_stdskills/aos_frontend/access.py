"""The web UI's access token and the address that carries it (stdlib only).

The UI always needs its token, on loopback too: an agent's process shares the
host's loopback. ``AOS_FRONTEND_TOKEN`` sets it; otherwise the first start
generates a strong random one and keeps it in ``frontend.token`` in the node's
state directory (mode 0600, reused across restarts so a bookmarked address
keeps working). Only the node's operator can read it there, or ask the service
for the address (``skill.call aos-frontend address``, admin only), which is
what ``aos status`` does. The command line imports this module too, to print
the address before the service runs (``aos up``, ``aos start``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

TOKEN_FILE = "frontend.token"
TOKEN_VARIABLE = "AOS_FRONTEND_TOKEN"
MIN_TOKEN = 16
"""Characters below which a stored token is not trusted (a truncated file): replaced."""
HOW_TO_OPEN = "run `aos status` for the UI's address with its token"


def token_file(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def read_token(path: Path) -> str | None:
    """The stored token, kept private (0600), or None when there is none usable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with os.fdopen(fd) as handle:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)  # another hand loosened it: only the owner reads it
        token = handle.read().strip()
    return token if len(token) >= MIN_TOKEN else None


def load_or_create_token(path: Path) -> str:
    """The token stored at ``path``, generated first when there is none.

    Written to a private temporary file and linked into place, so a reader never
    sees half a token and two processes creating it at once agree on one."""
    token = read_token(path)
    if token is not None:
        return token
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(fresh + "\n")
        if path.exists():  # present but unusable (empty, truncated): replaced
            os.replace(temporary, path)
            return fresh
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process made one first: theirs it is
            return read_token(path) or load_or_create_token(path)
        return fresh
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def token_for(environ: Mapping[str, str], state_dir: Path) -> str:
    """``AOS_FRONTEND_TOKEN`` when set, else the node's stored (or new) token."""
    return environ.get(TOKEN_VARIABLE) or load_or_create_token(token_file(state_dir))


def page_url(host: str, port: int | str, token: str | None = None) -> str:
    """The UI's address; with ``token``, the one to open once (it sets the cookie)."""
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    return f"{url}?token={quote(token, safe='')}" if token else url
