"""Seeded, bounded fuzzing of every input door (issue 11); long runs: ``python bench/fuzz.py``.

Two layers: hypothesis drives the pure parsers (decoder, box parser, envelopes, Frigate events)
with derandomized, size-capped examples, where a failure shrinks to a small reproducer; then
``FuzzRun`` (tests/server/fuzz_support.py) sends mutated real inputs through a running server's
HTTP API, MQTT ingest, edge and Frigate handlers and checks the rules listed there (no 5xx, no
dying task, balanced counters, a real frame still works, bounded memory). Sizes are chosen to
stay well under a minute on the 2-core CI machine; the inputs are counted in the assertion
messages.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smart_reid_server.ingest.edge import EdgeSource, EnvelopeError, parse_envelope
from smart_reid_server.ingest.frigate import FrigateSource
from smart_reid_server.vision.decode import BadFrameError, BoxBudget, decode_image, parse_detections

from tests.server.fuzz_support import (
    Corpus,
    FuzzRun,
    edge_envelope,
    frigate_event,
    ingest_payload,
    mutate_bytes,
)
from tests.server.server_support import cuhk, running_app, settings_for
from tests.server.sources_support import RecordingSink

pytestmark = pytest.mark.timeout(180)

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=40,
)


@pytest.fixture(scope="module")
def corpus(cuhk03_dir: Path) -> Corpus:
    return Corpus(cuhk(cuhk03_dir, "0007_00"))


def test_the_decoder_answers_every_input_with_an_image_or_a_4xx(corpus: Corpus) -> None:
    seeds = corpus.valid + corpus.bombs

    @FUZZ
    @given(st.integers(0, len(seeds) - 1), st.integers(0, 2**32 - 1), st.binary(max_size=64))
    def check(index: int, seed: int, junk: bytes) -> None:
        data = mutate_bytes(random.Random(seed), seeds[index]) + junk[: seed % 3 * 20]
        try:
            image = decode_image(data, max_bytes=20 << 20)
        except BadFrameError as err:
            assert err.code in (400, 413, 415)
            return
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"
        assert max(image.shape[:2]) <= 8192

    check()


@FUZZ
@given(json_values | st.lists(json_values, max_size=40), st.integers(1, 4000), st.integers(1, 4000))
def test_box_parsing_never_returns_more_than_max_persons(raw: Any, width: int, height: int) -> None:
    budget = BoxBudget(max_persons=8)
    try:
        detections = parse_detections(raw, width, height, budget)
    except BadFrameError as err:
        assert err.code == 400
        return
    assert len(detections) <= 8
    for d in detections:
        assert 0 <= d.box.x1 <= d.box.x2 <= width and 0 <= d.box.y1 <= d.box.y2 <= height
        assert 0.0 <= d.score <= 1.0


def test_envelopes_and_events_are_parsed_or_rejected_never_raised(corpus: Corpus) -> None:
    from smart_reid_server.ingest.mqtt import MqttIngest

    sink = RecordingSink()

    @FUZZ
    @given(st.integers(0, 2**32 - 1))
    def check(seed: int) -> None:
        rng = random.Random(seed)
        try:
            envelope = parse_envelope(
                edge_envelope(rng, corpus, "http://127.0.0.1:9"), max_bytes=1 << 20
            )
            assert len(envelope.persons) <= 32
        except EnvelopeError:
            pass
        frigate.consider("frigate/events", frigate_event(rng, corpus))
        payload = ingest_payload(rng, corpus)
        try:
            ingest._parse("front", payload, 1.0, 1.0)
        except BadFrameError as err:
            assert err.code in (400, 413, 415)

    frigate = FrigateSource({"url": "http://127.0.0.1:9"}, sink, None)  # type: ignore[arg-type]
    ingest = MqttIngest(sink, None, base_topic="b", max_bytes=1 << 20)  # type: ignore[arg-type]
    check()


async def test_handlers_survive_fuzzed_messages(corpus: Corpus) -> None:
    sink = RecordingSink()
    rng = random.Random(5)
    async with aiohttp.ClientSession() as session:
        edge = EdgeSource({}, sink, session, topic="e/+")
        for _ in range(150):
            edge.on_message("e/jetson", edge_envelope(rng, corpus, "http://127.0.0.1:9"))
        await edge.drain()
    stats = edge.stats
    assert stats.received == 150
    assert (
        stats.received == stats.offered + stats.dropped + stats.rejected + stats.extra["no_person"]
    )


async def test_a_running_server_survives_a_seeded_fuzz_run(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    settings_ = settings_for(
        tmp_path, models_dir, http={"port": 0, "max_upload_mb": 4}, auto_add_cameras=False
    )
    async with running_app(settings_) as app:
        run = FuzzRun(app, cuhk(cuhk03_dir, "0007_00"), seed=11)
        report = await run.run(2000, time_budget_s=40.0)
    summary = report.summary()
    assert not report.problems, summary + "\n" + "\n".join(report.problems[:20])
    assert sum(report.inputs.values()) >= 500, summary
    assert set(report.inputs) == {"http", "mqtt", "edge", "frigate"}, summary
