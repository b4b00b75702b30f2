"""Request and response files on syft-rpc's wire format, written atomically, read tolerantly.

Stock ``syft-rpc`` writes both files with a plain ``write_text``, and watchers see them while
they are still empty: on a shared disk that failed 4-67 % of back-to-back requests
(docs/syftbox.md, "Races"). Here replies are written to a temporary name and renamed into place
(the SyftBox daemon ignores ``*.tmp`` and itself delivers files by rename), and a request that
does not parse yet is read again for a short grace period before it is called malformed.
These functions block: callers run them on a thread pool.
"""

from __future__ import annotations

import os
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from syft_core import Client
from syft_rpc.protocol import SyftRequest, SyftResponse, SyftStatus

REQUEST = ".request"
RESPONSE = ".response"


class TooLarge(Exception):
    """The request file is bigger than the router takes (its size is checked before reading)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"Request too large: {size} bytes (the limit is {limit})")


class NotReady(Exception):
    """The request file exists but does not parse (yet): a writer may still be at work."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def request_id(path: Path) -> uuid.UUID | None:
    """The id a request file's name carries (None: not a ``<uuid>.request`` file)."""
    if path.suffix != REQUEST or path.name.startswith("."):
        return None
    try:
        return uuid.UUID(path.stem)
    except ValueError:
        return None


def answered(path: Path) -> bool:
    return path.with_suffix(RESPONSE).exists()


def read_request(path: Path, limit: int) -> SyftRequest | None:
    """The request in ``path``; None when it is gone; ``NotReady`` when it does not parse;
    ``TooLarge`` when it has more than ``limit`` bytes (work stays bounded)."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise TooLarge(size, limit)
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return SyftRequest.model_validate_json(data)
    except (ValidationError, ValueError) as e:
        raise NotReady(e) from None


def write_atomic(path: Path, data: str) -> None:
    """Write ``path`` so that no reader ever sees it partly written."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def reply(
    path: Path,
    client: Client,
    *,
    body: bytes | None,
    status: int,
    headers: dict[str, str] | None = None,
    request: SyftRequest | None = None,
) -> bool:
    """Answer the request in ``path`` next to it; False when the request has gone meanwhile.

    ``request`` is None when the file could not be parsed: the reply then takes its id from the
    file name and its URL from the folder, as ``syft_rpc.rpc.write_response`` does.
    """
    if not path.exists():
        return False
    rid = request.id if request is not None else request_id(path)
    if rid is None:
        return False
    url = request.url if request is not None else client.to_syft_url(path.parent)
    response = SyftResponse(
        id=rid,
        sender=client.email,
        url=url,
        headers=headers or {},
        body=body,
        status_code=SyftStatus(status),
        created=datetime.now(UTC),
        **({"expires": request.expires} if request is not None else {}),
    )
    write_atomic(path.with_suffix(RESPONSE), response.dumps())
    return True
