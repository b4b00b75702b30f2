"""Sealed tokens: data dragoman hands a client and must get back unchanged and unread.

The Responses API is stateless for Codex (``store: false``): what the backend needs on the next
turn (Anthropic's signed thinking blocks, DeepSeek's ``reasoning_content``) travels inside the
reasoning item's ``encrypted_content``, and the client sends it back. A :class:`Sealer` makes that
opaque and unforgeable: AES-256-GCM under a key derived from ``DRAGOMAN_MASTER_KEY`` (HKDF, one
key per purpose), so a client can neither read nor alter nor mint what the gateway later trusts,
and a blob sealed by someone else (OpenAI's own ``encrypted_content``) simply does not open
(docs/responses-integration.md, "Stateless reasoning").

The pure translators never import this module: they take any object with ``seal``/``unseal``
(:class:`dragoman.translate.responses.reasoning.Sealer`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger("dragoman.sealing")

MASTER_KEY_ENV = "DRAGOMAN_MASTER_KEY"
#: what reasoning items are sealed for (the HKDF ``info`` and the AEAD associated data)
REASONING = "reasoning"
#: every token starts with this, so "is it ours?" needs no decryption; base64url never makes it
_PREFIX = "dgs1."
_NONCE = 12
#: a token longer than this is not ours (bounds the work an oversized blob can cause)
MAX_TOKEN_CHARS = 8 * 1024 * 1024


def _derive(master: str, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"dragoman",
        info=f"dragoman seal {purpose} v1".encode(),
    ).derive(master.encode())


class Sealer:
    """Seal bytes into a printable token; unseal returns None for anything not sealed by this
    key for this purpose (never raises on client input)."""

    __slots__ = ("_aad", "_aead", "ephemeral", "purpose")

    def __init__(self, key: bytes, purpose: str = REASONING, *, ephemeral: bool = False) -> None:
        if len(key) != 32:
            raise ValueError("a sealing key is 32 bytes")
        self._aead = AESGCM(key)
        self._aad = f"dragoman/{purpose}/v1".encode()
        self.purpose = purpose
        #: the key was generated for this process (no master key): tokens die with it
        self.ephemeral = ephemeral

    @classmethod
    def from_master(
        cls,
        master: str | None = None,
        purpose: str = REASONING,
        *,
        env: Mapping[str, str] | None = None,
    ) -> Sealer:
        """The sealer for ``purpose`` under the master key (``DRAGOMAN_MASTER_KEY`` when
        ``master`` is None). Without one, a random key for this process only, with a warning:
        tokens then do not survive a restart nor open on another instance, and the reasoning
        they carried is dropped on the next turn (the conversation goes on without it)."""
        if master is None:
            master = (os.environ if env is None else env).get(MASTER_KEY_ENV) or None
        if master:
            return cls(_derive(master, purpose), purpose)
        log.warning(
            "%s is not set: %s tokens are sealed with a key of this process only; they will "
            "not open after a restart or on another instance",
            MASTER_KEY_ENV,
            purpose,
        )
        return cls(secrets.token_bytes(32), purpose, ephemeral=True)

    def seal(self, data: bytes) -> str:
        nonce = secrets.token_bytes(_NONCE)
        ct = self._aead.encrypt(nonce, data, self._aad)
        return _PREFIX + base64.urlsafe_b64encode(nonce + ct).rstrip(b"=").decode()

    def unseal(self, token: object) -> bytes | None:
        if (
            not isinstance(token, str)
            or not token.startswith(_PREFIX)
            or len(token) > MAX_TOKEN_CHARS
        ):
            return None
        body = token[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) < _NONCE + 16:
            return None
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], self._aad)
        except InvalidTag:
            return None

    @staticmethod
    def looks_sealed(token: object) -> bool:
        """Whether ``token`` has the shape of one of ours (not whether it opens)."""
        return isinstance(token, str) and token.startswith(_PREFIX)
