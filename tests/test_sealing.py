"""Sealed tokens (dragoman/sealing.py): what only this gateway can open."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragoman.sealing import MASTER_KEY_ENV, REASONING, Sealer


def test_round_trip_and_format() -> None:
    s = Sealer.from_master("master one")
    tok = s.seal(b"payload \x00\xff")
    assert tok.startswith("dgs1.") and Sealer.looks_sealed(tok)
    assert "=" not in tok and "/" not in tok and "+" not in tok  # URL-safe, unpadded
    assert s.unseal(tok) == b"payload \x00\xff"
    assert s.seal(b"x") != s.seal(b"x")  # a fresh nonce every time


def test_the_same_master_key_opens_on_every_instance() -> None:
    tok = Sealer.from_master("shared").seal(b"x")
    assert Sealer.from_master("shared").unseal(tok) == b"x"
    assert Sealer.from_master(env={MASTER_KEY_ENV: "shared"}).unseal(tok) == b"x"


@pytest.mark.parametrize(
    "other",
    [
        Sealer.from_master("another master"),
        Sealer.from_master("master one", purpose="something else"),
    ],
)
def test_another_key_or_purpose_does_not_open(other: Sealer) -> None:
    assert other.unseal(Sealer.from_master("master one", REASONING).seal(b"x")) is None


@pytest.mark.parametrize(
    "token",
    [
        None,
        42,
        "",
        "dgs1.",
        "dgs1.@@@@",
        "dgs1.AAAA",
        "gAAAAABnZXJhdGVkLWJ5LW9wZW5haS1mZXJuZXQ=",  # OpenAI's encrypted_content (Fernet)
        "dgs1." + "A" * 100,
    ],
)
def test_anything_else_is_none_never_an_exception(token: object) -> None:
    assert Sealer.from_master("m").unseal(token) is None


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 200), st.integers(1, 63))
def test_any_altered_byte_is_rejected(data: bytes, pos: int, flip: int) -> None:
    s = Sealer.from_master("m")
    tok = s.seal(data)
    body = bytearray(tok.encode())
    i = 5 + pos % (len(body) - 5)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    body[i] = alphabet[(alphabet.index(body[i]) + flip) % len(alphabet)]
    # changing the last base64 character may only touch padding bits: then it is the same token
    assert s.unseal(body.decode()) in (None, data)
    if i < len(body) - 1:
        assert s.unseal(body.decode()) is None


def test_no_master_key_means_a_process_key_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dragoman.sealing"):
        a = Sealer.from_master(env={})
    assert a.ephemeral
    assert "DRAGOMAN_MASTER_KEY is not set" in caplog.text
    b = Sealer.from_master(env={})
    assert b.unseal(a.seal(b"x")) is None  # another process (or a restart) cannot open it
    assert a.unseal(a.seal(b"x")) == b"x"


def test_the_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        Sealer(b"short")
