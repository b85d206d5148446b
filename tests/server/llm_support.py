"""A real LLM for tests (llama.cpp's OpenAI-compatible server with Gemma 3 270M, built into
``.venv-llm`` by ``scripts/setup --llm``) and small local chat endpoints that misbehave on
purpose (slow, broken JSON, HTTP errors) for the fallbacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
LLM_VENV = Path(os.environ.get("SMART_REID_LLM_VENV", REPO / ".venv-llm"))
LLM_MODEL = Path(os.environ.get("SMART_REID_LLM_MODEL", LLM_VENV / "gemma.gguf"))
READY_WITHIN_S = 120.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def real_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:<port>/v1``) of llama.cpp's server running Gemma 3 270M."""
    python = LLM_VENV / "bin" / "python"
    if not python.exists() or not LLM_MODEL.exists():
        pytest.skip(
            f"no real LLM: {LLM_VENV} (with gemma.gguf) is missing; build it with "
            "`scripts/setup --llm` (about 15 min the first time)"
        )
    port = _free_port()
    log = tmp_path_factory.mktemp("llm") / "llama-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(python),
                "-m",
                "llama_cpp.server",
                "--model",
                str(LLM_MODEL),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``/v1/models`` until it answers, the process dies, or the deadline passes."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"llama_cpp.server exited ({process.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        # Short poll interval while the model loads; the deadline bounds the whole wait.
        time.sleep(0.2)
    raise AssertionError(f"llama_cpp.server not ready within {READY_WITHIN_S:.0f} s")


Handler = Callable[[dict[str, Any]], Any]


def chat_reply(content: str, *, tokens: int | None = 50, refusal: str | None = None) -> Any:
    body: dict[str, Any] = {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
    }
    if tokens is not None:
        body["usage"] = {
            "prompt_tokens": tokens - 10,
            "completion_tokens": 10,
            "total_tokens": tokens,
        }
    return web.json_response(body)


class FakeChat:
    """A local OpenAI-style chat endpoint whose answer a test chooses (``handler``)."""

    def __init__(self, handler: Handler, delay_s: float = 0.0) -> None:
        self.handler = handler
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self.started = asyncio.Event()
        self.closing = asyncio.Event()

    async def hold(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the endpoint shuts down (no task left behind)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.started.set()
        if self.delay_s:
            await self.hold(self.delay_s)
        result = self.handler(body)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, web.StreamResponse):
            return result
        return chat_reply(json.dumps(result) if not isinstance(result, str) else result)


@asynccontextmanager
async def fake_chat(handler: Handler, delay_s: float = 0.0) -> AsyncIterator[tuple[str, FakeChat]]:
    """(base URL, the endpoint) of a FakeChat on a free loopback port."""
    chat = FakeChat(handler, delay_s)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat._chat)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/v1", chat
    finally:
        chat.closing.set()
        await runner.cleanup()


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{_free_port()}/v1"


async def get_json(url: str, **params: Any) -> tuple[int, Any]:
    query = {k: str(v) for k, v in params.items()}
    async with aiohttp.ClientSession() as session, session.get(url, params=query) as response:
        return response.status, await response.json()
