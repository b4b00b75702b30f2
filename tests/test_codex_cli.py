"""The real Codex CLI (npm ``@openai/codex``, pinned in ``.ci/run``) against the fake
Responses server and dragoman's Codex catalog and config generators, offline.

What it proves for the Responses front (docs/codex.md): the ``config.toml`` block dragoman
generates points Codex at a gateway; Codex decodes the catalog dragoman serves (so an unknown
model still gets the freeform ``apply_patch`` tool); and with Responses answers of the shape the
front emits, ``codex exec`` runs a shell command through ``exec_command``, applies a patch through
``apply_patch`` (a ``custom_tool_call`` with the raw patch as ``input``), and sends every output,
and the reasoning item with its ``encrypted_content``, back on the next turn.

Skipped unless ``codex`` is on PATH; under ``CI=true`` that skip is a failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.fakes import FakeOpenAI, ResponsesReply, r_call, r_custom, r_message, r_reasoning
from tests.support.codex import CODEX, PINNED, codex_exec, codex_version, run_codex, write_config
from tests.support.servers import ServerThread

from dragoman.translate.responses.codex import CodexModel, codex_catalog, is_codex_client

pytestmark = [
    pytest.mark.codex,  # under CI=true a skip here fails the run (tests/conftest.py)
    pytest.mark.skipif(CODEX is None, reason="Codex CLI not installed"),
]

MODEL = "qwen3-coder"
KEY_ENV = "DRAGOMAN_TEST_KEY"
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello from a patch\n*** End Patch\n"
CATALOG = codex_catalog(
    [CodexModel(MODEL, context_window=32768, reasoning_levels=("low", "medium", "high"))]
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai", models=[MODEL]) as f:
        yield f


def test_the_pinned_version_is_installed() -> None:
    assert codex_version() == PINNED


def test_codex_decodes_the_catalog_dragoman_serves(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(
            {"path": request.path, "query": dict(request.query), "headers": dict(request.headers)}
        )
        return web.json_response(CATALOG)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    with ServerThread(app) as srv:
        home = tmp_path / "codex"
        write_config(home, srv.url, model=MODEL, env_key=KEY_ENV)
        run = run_codex(
            home, tmp_path / "w", ["debug", "models"], env={KEY_ENV: "dg-key"}, timeout=60
        )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)["models"]
    assert [(m["slug"], m["apply_patch_tool_type"], m["context_window"]) for m in got] == [
        (MODEL, "freeform", 32768)
    ]
    assert [lv["effort"] for lv in got[0]["supported_reasoning_levels"]] == [
        "low",
        "medium",
        "high",
    ]
    req = seen[0]
    assert req["path"] == "/v1/models" and req["query"] == {"client_version": PINNED}
    assert req["headers"]["Authorization"] == "Bearer dg-key"
    assert is_codex_client(req["headers"]["User-Agent"], req["headers"].get("originator"))


def test_codex_exec_shell_command_and_apply_patch(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.reset()
    fake.enqueue(
        ResponsesReply(
            output=[
                r_reasoning(summary="I will write the file first."),
                r_call("exec_command", {"cmd": "printf hi > out.txt && echo wrote"}, "call_sh"),
            ]
        ),
        ResponsesReply(output=[r_custom("apply_patch", PATCH, "call_patch")]),
        ResponsesReply(output=[r_message("All done.")]),
    )
    home, work = tmp_path / "codex", tmp_path / "work"
    write_config(home, fake.url, model=MODEL, env_key=KEY_ENV, catalog=CATALOG)
    run = codex_exec(home, work, "Create out.txt and hello.txt", env={KEY_ENV: fake.api_key or ""})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("All done."), run.stdout
    assert (work / "out.txt").read_text() == "hi"
    assert (work / "hello.txt").read_text() == "hello from a patch\n"
    assert fake.pending == 0

    turns = fake.requests_to("/v1/responses")
    assert len(turns) == 3
    first, second, third = (t.body for t in turns)
    assert turns[0].header("authorization") == f"Bearer {fake.api_key}"
    assert turns[0].header("accept") == "text/event-stream"
    assert is_codex_client(turns[0].header("user-agent"), turns[0].header("originator"))
    assert first["stream"] is True and first["store"] is False
    assert "reasoning.encrypted_content" in first["include"]
    assert first["reasoning"] == {"effort": "medium", "summary": "auto"}  # from the catalog
    tools = {t.get("name"): t for t in first["tools"]}
    assert tools["exec_command"]["type"] == "function"
    assert tools["apply_patch"]["type"] == "custom"
    assert tools["apply_patch"]["format"]["type"] == "grammar"
    assert "*** Begin Patch" in tools["apply_patch"]["format"]["definition"]
    # the base instructions of the catalog open the conversation
    assert first["input"][0]["role"] == "developer"
    assert first["input"][0]["content"][0]["text"] == CATALOG["models"][0]["base_instructions"]  # type: ignore[index]

    def items(body: dict[str, Any], t: str) -> list[dict[str, Any]]:
        return [i for i in body["input"] if i.get("type") == t]

    rs = items(second, "reasoning")
    assert len(rs) == 1 and rs[0]["summary"] == [
        {"type": "summary_text", "text": "I will write the file first."}
    ]
    assert fake.responses_state.trusted(rs[0]["encrypted_content"])  # sent back untouched
    (call,) = items(second, "function_call")
    assert call["call_id"] == "call_sh" and call["name"] == "exec_command"
    (out,) = items(second, "function_call_output")
    assert out["call_id"] == "call_sh" and "wrote" in out["output"]
    (patch,) = items(third, "custom_tool_call")
    assert patch["call_id"] == "call_patch" and patch["input"] == PATCH
    (patch_out,) = items(third, "custom_tool_call_output")
    assert patch_out["call_id"] == "call_patch"
    assert "hello.txt" in json.dumps(patch_out["output"])


# ------------------------------------------------- Codex on dragoman's Responses translators

BRIDGE_MODEL = "deepseek-v4"


class TranslatorGateway:
    """A stand-in for the Responses front before it is wired into the pipeline: each
    ``POST /v1/responses`` goes through ``responses_to_chat``; the Chat request is recorded and
    answered with the next scripted list of Chat chunks (what an upstream would stream), turned
    into Responses events by ``ChatToResponsesStream``. Only the pure translators are involved."""

    def __init__(self, script: list[list[dict[str, Any]]]) -> None:
        self.script = script
        self.chat_requests: list[dict[str, Any]] = []
        self.raw: list[bytes] = []

    async def responses(self, request: web.Request) -> web.StreamResponse:
        from tests.translate.responses_helpers import SEALER

        from dragoman.translate.responses import ChatToResponsesStream, responses_to_chat

        chat, ctx = responses_to_chat(await request.json(), sealer=SEALER)
        self.chat_requests.append(chat)
        chunks = self.script[len(self.chat_requests) - 1]
        m = ChatToResponsesStream(ctx)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        raw = m.start() + m.ping()
        for c in chunks:
            raw += m.feed(c) + m.ping()
        raw += m.finish()
        self.raw.append(raw)
        await resp.write(raw)
        await resp.write_eof()
        return resp

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/responses", self.responses)
        return app


def test_codex_on_the_responses_translators(tmp_path: Path) -> None:
    from tests.conformance.responses_sse_checks import check_responses_sse
    from tests.translate.responses_helpers import delta, finish, tool, usage

    wrapped = json.dumps({"patch": "```diff\n" + PATCH + "```"})  # how models wrap a patch
    gw = TranslatorGateway(
        [
            [
                delta(role="assistant", reasoning_content="Plan: write "),
                delta(reasoning_content="out.txt."),
                delta(content="Running it."),
                tool(0, "call_1", "exec_command", '{"cmd": "printf hi'),
                tool(0, args=' > out.txt"}'),
                finish("tool_calls"),
                usage(1200, 40),
            ],
            [
                tool(0, "call_2", "apply_patch", wrapped[:25]),
                tool(0, args=wrapped[25:]),
                finish("tool_calls"),
                usage(1300, 60),
            ],
            [delta(content="Finished."), finish(), usage(1400, 5)],
        ]
    )
    catalog = codex_catalog(
        [CodexModel(BRIDGE_MODEL, context_window=65536, reasoning_levels=("low", "high"))]
    )
    with ServerThread(gw.app()) as srv:
        home, work = tmp_path / "codex", tmp_path / "work"
        write_config(home, srv.url, model=BRIDGE_MODEL, env_key=KEY_ENV, catalog=catalog)
        run = codex_exec(home, work, "Write out.txt, then hello.txt", env={KEY_ENV: "k"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("Finished."), run.stdout
    assert (work / "out.txt").read_text() == "hi"
    assert (work / "hello.txt").read_text() == "hello from a patch\n"
    for raw in gw.raw:
        check_responses_sse(raw)
    first, second, third = gw.chat_requests
    assert first["reasoning_effort"] == "high"  # the catalog's default: between low and high
    # turn 2: Codex sent the reasoning item back; its sealed content opened, the text returned
    a = second["messages"][-2]
    assert a["role"] == "assistant" and a["content"] == "Running it."
    assert a["reasoning_content"] == "Plan: write out.txt."
    assert a["tool_calls"][0]["function"] == {
        "name": "exec_command",
        "arguments": '{"cmd": "printf hi > out.txt"}',
    }
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["tool_call_id"] == "call_1"
    # turn 3: the unwrapped patch went to Codex as raw input, and comes back in the function form
    call = third["messages"][-2]["tool_calls"][0]
    assert call["id"] == "call_2"
    assert json.loads(call["function"]["arguments"]) == {"input": PATCH.rstrip("\n")}
    assert "A hello.txt" in third["messages"][-1]["content"]
