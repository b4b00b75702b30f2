"""Key material: the pepper for client-key hashes and the Fernet key for provider credentials.

Both derive from ``DRAGOMAN_MASTER_KEY``. Without it, a random pepper is generated once and kept
in the ``settings`` table (with a warning), and storing provider credentials is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncEngine

from dragoman.store.db import get_setting, set_setting_if_absent

log = logging.getLogger("dragoman.store")

MASTER_KEY_ENV = "DRAGOMAN_MASTER_KEY"
_PEPPER_SETTING = "key_pepper"


class MasterKeyMissingError(RuntimeError):
    """Raised when an operation needs DRAGOMAN_MASTER_KEY and it is not set."""


def master_key(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get(MASTER_KEY_ENV) or None


def _hkdf(master: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dragoman", info=info).derive(
        master.encode()
    )


def fernet_for(master: str) -> Fernet:
    """Fernet from the master key: used as is when it is a Fernet key, else derived with HKDF."""
    try:
        return Fernet(master.encode())
    except (ValueError, TypeError):
        return Fernet(base64.urlsafe_b64encode(_hkdf(master, b"dragoman credentials v1")))


def encrypt(master: str | None, plaintext: str) -> str:
    if not master:
        raise MasterKeyMissingError(
            f"cannot store provider credentials: set {MASTER_KEY_ENV} (the key that encrypts them)"
        )
    return fernet_for(master).encrypt(plaintext.encode()).decode()


def decrypt(master: str | None, token: str) -> str:
    if not master:
        raise MasterKeyMissingError(f"cannot read stored credentials: {MASTER_KEY_ENV} is not set")
    try:
        return fernet_for(master).decrypt(token.encode()).decode()
    except InvalidToken:
        raise MasterKeyMissingError(
            f"cannot decrypt a stored credential: {MASTER_KEY_ENV} is not the key it was "
            "stored with"
        ) from None


async def load_pepper(engine: AsyncEngine, master: str | None) -> bytes:
    """The pepper for key hashes.

    A pepper already kept in the database (generated when no master key was set) wins, so keys
    made before a master key was configured keep working; otherwise it derives from the master key,
    or is generated and kept (with a warning) when there is none.
    """
    async with engine.begin() as conn:
        stored = await get_setting(conn, _PEPPER_SETTING)
        if stored is not None:
            return bytes.fromhex(stored)
        if master:
            return _hkdf(master, b"dragoman key pepper v1")
        log.warning(
            "%s is not set: client keys are hashed with a generated pepper kept in the database; "
            "set it to keep the pepper out of the database",
            MASTER_KEY_ENV,
        )
        got = await set_setting_if_absent(conn, _PEPPER_SETTING, secrets.token_hex(32))
        return bytes.fromhex(got)


def hash_secret(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def new_secret() -> str:
    return "dg-" + secrets.token_urlsafe(32)
