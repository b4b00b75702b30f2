"""Record what the real Codex CLI sends, as fixtures (``tests/fixtures/codex_*.json``).

    python -m tests.support.codex_capture [OUTDIR]     # default: tests/fixtures

One ``codex exec`` run against the fake Responses server (openai mode) with dragoman's catalog
served at ``model_catalog_url``: turn 1 answers with a reasoning item and an ``exec_command``
call, turn 2 with an ``apply_patch`` custom tool call, turn 3 with a message. Written: the
catalog request and the three ``POST /v1/responses`` requests (headers and bodies), with the
temporary paths replaced by ``<work>`` / ``<codex_home>`` and the key by ``<key>``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from tests.fakes import FakeOpenAI, ResponsesReply, r_call, r_custom, r_message, r_reasoning
from tests.fakes.common import FIXTURES_DIR
from tests.support.codex import codex_exec, codex_version, write_config
from tests.support.servers import ServerThread

from dragoman.translate.responses.codex import CodexModel, codex_catalog

MODEL = "qwen3-coder"
KEY_ENV = "DRAGOMAN_API_KEY"
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello from a patch\n*** End Patch\n"
_DROP_HEADERS = {"host", "content-length"}


def _clean(value: Any, subs: dict[str, str]) -> Any:
    text = json.dumps(value, ensure_ascii=False)
    for old, new in subs.items():
        text = text.replace(json.dumps(old)[1:-1], new)
    return json.loads(text)


def capture(outdir: Path) -> list[Path]:
    catalog = codex_catalog(
        [CodexModel(MODEL, context_window=32768, reasoning_levels=("low", "medium", "high"))]
    )
    seen: list[dict[str, Any]] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": None,
            }
        )
        return web.json_response(catalog)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerThread(app) as cat,
        FakeOpenAI("openai", models=[MODEL]) as fake,
    ):
        home, work = Path(tmp) / "codex", Path(tmp) / "work"
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
        cfg = write_config(home, fake.url, model=MODEL, env_key=KEY_ENV)
        # the catalog from its own server (the fake answers /v1/models in OpenAI's shape)
        cfg.write_text(cfg.read_text().replace(f"{fake.url}/v1/models", f"{cat.url}/v1/models"))
        key = fake.api_key or ""
        run = codex_exec(home, work, "Create out.txt and hello.txt", env={KEY_ENV: key})
        if run.returncode != 0:
            raise SystemExit(f"codex exec failed:\n{run.stderr[-4000:]}")
        subs = {
            str(work.resolve()): "<work>",
            str(work): "<work>",
            str(home): "<codex_home>",
            key: "<key>",
            fake.url: "<gateway>",
            cat.url: "<gateway>",
        }
        version = codex_version()
        written = []
        outdir.mkdir(parents=True, exist_ok=True)
        records = [("codex_models_request.json", seen[0] if seen else None)]
        for i, r in enumerate(fake.requests_to("/v1/responses"), 1):
            records.append(
                (
                    f"codex_responses_turn{i}.json",
                    {
                        "method": r.method,
                        "path": r.path,
                        "query": r.query,
                        "headers": {k: v for k, v in r.headers.items() if k not in _DROP_HEADERS},
                        "body": r.body,
                    },
                )
            )
        for name, rec in records:
            if rec is None:
                continue
            rec = dict(rec)
            rec["headers"] = {
                k: v for k, v in rec["headers"].items() if k.lower() not in _DROP_HEADERS
            }
            doc = {"codex_version": version, **_clean(rec, subs)}
            path = outdir / name
            path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
            written.append(path)
        return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURES_DIR
    for p in capture(out):
        print(p)
