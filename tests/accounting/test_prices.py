"""Prices: shipped table, overrides, lookup order and cost arithmetic (no database)."""

from __future__ import annotations

import datetime as _dt

import pytest

from dragoman.accounting import Usage
from dragoman.accounting.prices import PriceBook, cost, default_table, worst_case
from dragoman.config import Prices, load_config_dict


def book(**extra: object) -> PriceBook:
    data: dict = {
        "providers": {
            "anth": {"kind": "anthropic", "base_url": "http://x"},
            "oai": {"kind": "openai", "base_url": "http://y"},
        },
        "models": {
            "claude-sonnet-4-5": {"provider": "anth"},
            "coder": {"provider": "anth", "model": "claude-opus-4-5-20251101"},
            "local": {"provider": "oai", "model": "qwen", "prices": {"input": 0.5, "output": 1}},
            "multi": {
                "deployments": [
                    {"provider": "anth", "model": "claude-haiku-4-5", "name": "cheap"},
                    {
                        "provider": "oai",
                        "model": "gpt-4o",
                        "name": "pricey",
                        "prices": {"input": 10, "output": 20, "per_request": 0.01},
                    },
                ]
            },
        },
    }
    data.update(extra)
    return PriceBook(load_config_dict(data))


def test_table_is_dated_and_complete() -> None:
    t = default_table()
    _dt.date.fromisoformat(t["as_of"])
    for name in (
        "claude-opus-4-5",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o3",
        "o4-mini",
    ):
        p = t["models"][name]
        assert p["input"] > 0 and p["output"] > p["input"]


def test_exact_and_prefix_lookup() -> None:
    b = book()
    assert b.price_for("claude-sonnet-4-5").input == 3.0
    dated = b.price_for("claude-sonnet-4-5-20250929")
    assert (dated.input, dated.output, dated.cache_write, dated.cache_read) == (3, 15, 3.75, 0.3)
    assert b.price_for("claude-opus-4-1-20250805").output == 75.0
    assert b.price_for("claude-opus-4-5-20251101").output == 25.0
    assert b.price_for("claude-3-5-haiku-20241022").input == 0.8
    assert b.price_for("gpt-4o-mini-2024-07-18").input == 0.15  # not gpt-4o
    assert b.price_for("gpt-4o-2024-08-06").input == 2.5
    assert b.price_for("gpt-4.1-nano-2025-04-14").output == 0.4
    assert b.price_for("o4-mini-2025-04-16").input == 1.1
    assert b.price_for("openai/gpt-4o").input == 2.5  # provider-prefixed names


def test_gateway_name_resolves_to_upstream_model() -> None:
    b = book()
    assert b.price_for("coder").input == 5.0  # models.coder.model = claude-opus-4-5-...


def test_model_and_deployment_prices_and_cache_defaults() -> None:
    b = book()
    local = b.price_for("local")
    # not Claude: missing cache prices default to the input price
    assert (local.input, local.output, local.cache_write, local.cache_read) == (0.5, 1, 0.5, 0.5)
    assert b.price_for("multi", "pricey").per_request == 0.01
    assert b.price_for("multi", "oai/gpt-4o").input == 10  # by provider/model too
    cheap = b.price_for("multi", "cheap")
    assert (cheap.input, cheap.output) == (1.0, 5.0)  # from the table via the deployment model


def test_claude_cache_defaults_for_config_prices() -> None:
    b = book(accounting={"prices": {"claude-sonnet-4-5": {"input": 4, "output": 20}}})
    p = b.price_for("claude-sonnet-4-5-20250929")
    assert (p.input, p.output, p.cache_write, p.cache_read) == (4, 20, 5.0, pytest.approx(0.4))


def test_config_overrides_table() -> None:
    b = book(accounting={"prices": {"gpt-4o": {"input": 1, "output": 2, "cache_read": 0.25}}})
    p = b.price_for("gpt-4o")
    assert (p.input, p.output, p.cache_read, p.cache_write) == (1, 2, 0.25, 1)
    assert b.price_for("gpt-4o-mini").input == 0.15  # the table's longer prefix still wins


def test_unknown_model_is_free_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    b = book()
    assert b.price_for("mystery-1").input == 0
    assert b.price_for("mystery-1", "d").output == 0
    assert caplog.text.count("no price for model 'mystery-1'") == 1


def test_cost_math() -> None:
    p = Prices(input=3, output=15, cache_write=3.75, cache_read=0.3, per_request=0.002)
    u = Usage(
        input_tokens=1000,
        output_tokens=500,
        cache_creation_input_tokens=2000,
        cache_read_input_tokens=10000,
    )
    expected = (1000 * 3 + 500 * 15 + 2000 * 3.75 + 10000 * 0.3) / 1e6 + 0.002
    assert cost(p, u) == pytest.approx(expected)
    assert cost(p, None) == 0.002
    assert worst_case(p, 1000, 4096) == pytest.approx((1000 * 3 + 4096 * 15) / 1e6 + 0.002)
    # OpenAI usage: cached tokens are split out of the prompt
    u2 = Usage.from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 1000},
        }
    )
    p2 = Prices(input=2.5, output=10, cache_write=2.5, cache_read=1.25)
    assert cost(p2, u2) == pytest.approx((200 * 2.5 + 10 * 10 + 1000 * 1.25) / 1e6)


def test_one_hour_cache_writes_and_web_searches_are_priced() -> None:
    """What an Anthropic answer bills beyond its tokens at the base rates (audit #23): 1-hour
    cache writes at 2x input (5-minute writes stay at 1.25x) and $0.01 per web search."""
    u = Usage.from_anthropic(
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 0,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 1000,
                "ephemeral_1h_input_tokens": 2000,
            },
            "server_tool_use": {"web_search_requests": 3},
        }
    )
    assert (u.cache_write_1h_tokens, u.web_search_requests) == (2000, 3)
    p = book().price_for("claude-sonnet-4-5")  # $3 in, $15 out
    assert (p.cache_write_1h, p.web_search) == (6.0, 0.01)
    want = (100 * 3 + 50 * 15 + 1000 * 3.75 + 2000 * 6.0) / 1e6 + 3 * 0.01
    assert cost(p, u) == pytest.approx(want)
    # a streamed answer: message_delta carries the cumulative server tool use
    s = Usage.from_anthropic({"input_tokens": 100, "output_tokens": 1})
    s.merge_anthropic({"output_tokens": 50, "server_tool_use": {"web_search_requests": 2}})
    assert s.web_search_requests == 2
    # not Claude: no server-tool price unless configured, 1-hour writes at the write price
    local = book().price_for("local")
    assert cost(local, Usage(10, 10, web_search_requests=5)) == pytest.approx(10 * 1.5 / 1e6)
