"""Which URLs a client may make anyone fetch (guard.urls): public http(s) hosts only, in every
spelling an address can take (audit #18, #2b)."""

from __future__ import annotations

import pytest

from dragoman.guard.images import refusal
from dragoman.guard.urls import url_refusal, webhook_refusal

REFUSED = [
    "http://127.0.0.1/x.png",
    "http://127.1/x.png",  # the short form resolvers accept
    "http://2130706433/x.png",  # decimal
    "http://0x7f000001/x.png",  # hex
    "http://[::1]/x.png",
    "http://[::ffff:127.0.0.1]/x.png",  # IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/x.png",  # NAT64 of 169.254.169.254
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5:8000/v1/models",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",  # shared address space
    "http://0.0.0.0/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://localhost:8080/x.png",
    "http://LOCALHOST./x.png",
    "http://printer.local/x.png",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",  # a single label: search domains
    "http://vllm:8000/",
    "http://foo.localhost/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "ftp://example.com/x.png",
    "//example.com/x.png",
    "http:///x.png",
    "http://example.com:99999/x.png",
]
ALLOWED = [
    "https://upload.wikimedia.org/x.png",
    "http://example.com/x.png",
    "https://8.8.8.8/x.png",
    "https://[2606:4700::1111]/x.png",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_or_odd_urls_are_refused(url: str) -> None:
    assert refusal(url) is not None


@pytest.mark.parametrize("url", ALLOWED)
def test_public_http_urls_pass(url: str) -> None:
    assert refusal(url) is None


def test_data_urls_stay_allowed() -> None:
    assert refusal("data:image/png;base64,iVBORw0KGgo=") is None
    assert refusal("DATA:image/png;base64,AAAA") is None


def test_webhooks_need_https_to_a_public_host() -> None:
    assert webhook_refusal("https://hooks.example.com/budget") is None
    assert "scheme" in (webhook_refusal("http://hooks.example.com/budget") or "")
    assert webhook_refusal("https://127.0.0.1/hook") is not None
    assert webhook_refusal("https://localhost/hook") is not None
    assert url_refusal("https://hooks.example.com/", schemes=("https",)) is None
