"""Key material: the pepper for client-key hashes and the Fernet key for provider credentials.

Both derive from the master key (``DRAGOMAN_MASTER_KEY``, or the key file: ``store/master.py``,
docs/keys-at-rest.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_ENV = "DRAGOMAN_MASTER_KEY"


class MasterKeyMissingError(RuntimeError):
    """Raised when an operation needs DRAGOMAN_MASTER_KEY and it is not set."""


def master_key(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get(MASTER_KEY_ENV) or None


def derive(master: str, info: bytes) -> bytes:
    """32 bytes for one purpose (``info``) from the master key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dragoman", info=info).derive(
        master.encode()
    )


def fernet_for(master: str) -> Fernet:
    """Fernet from the master key: used as is when it is a Fernet key, else derived with HKDF."""
    try:
        return Fernet(master.encode())
    except (ValueError, TypeError):
        return Fernet(base64.urlsafe_b64encode(derive(master, b"dragoman credentials v1")))


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


def hash_secret(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def new_secret() -> str:
    return "dg-" + secrets.token_urlsafe(32)
