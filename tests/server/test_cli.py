"""The ``smart-reid`` command: configuration checks, model commands, start-up errors, the demo."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from smart_reid_server.cli import main
from smart_reid_server.demo import broker_reachable as demo_broker_reachable
from smart_reid_server.logging_setup import setup_logging

from tests.server.conftest import MqttCollector

pytestmark = pytest.mark.timeout(180)


def test_check_config_prints_the_effective_configuration_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cameras: [front]\nhttp:\n  token: topsecret\n", encoding="utf-8")
    monkeypatch.setenv("SMART_REID_MQTT__HOST", "broker.lan")
    code = main(["check-config", "--config", str(config), "--set", "visits.window_s=90"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("configuration OK")
    assert "host: broker.lan" in out and "window_s: 90.0" in out
    assert "topsecret" not in out and "**redacted**" in out


def test_config_errors_are_one_line_naming_the_key_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMART_REID_CONFIG", raising=False)
    assert main(["check-config", "--set", "mqtt.port=lots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "mqtt.port" in err
    assert main(["check-config", "--config", "/nonexistent/config.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["check-config", "--set", "novalue"]) == 2
    assert "key.path=value" in capsys.readouterr().err


def test_models_list_marks_the_configured_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--set", "models.reid=osnet_x0_25_msmt17"]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = [
        line.split()[1] for line in lines if line.startswith("*") and "configured" not in line
    ]
    assert marked == ["yolox_nano_416", "osnet_x0_25_msmt17"]


def test_models_verify_checks_local_files_and_names_missing_ones(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = main(["models", "verify", "--models-dir", str(models_dir), "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert ok == 0
    assert out.count("ok   ") == 2 and "yolox_nano_416.onnx" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = main(
        ["models", "verify", "--models-dir", str(empty), "--data-dir", str(tmp_path / "d")]
    )
    out = capsys.readouterr().out
    assert failed == 1
    assert out.count("FAIL ") == 2 and "yolox_nano_416" in out
    assert main(["models", "verify", "no_such_model"]) == 2
    assert "models list" in capsys.readouterr().err


def _env(tmpdir: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_REID_")}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    env.update(extra)
    return env


def _run(
    args: list[str],
    cwd: Path,
    timeout: float = 120,
    tmpdir: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = env if env is not None else _env(tmpdir)
    return subprocess.run(
        [sys.executable, "-m", "smart_reid_server", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serve_with_a_missing_model_exits_2_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    result = _run(
        [
            "serve",
            "--models-dir",
            str(empty),
            "--data-dir",
            str(tmp_path / "data"),
            "--set",
            "models.download=false",
            "--set",
            "mqtt.enabled=false",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("smart-reid: cannot start:")
    assert "yolox_nano_416" in last and "models.download" in last


def test_serve_with_a_corrupt_model_exits_2(tmp_path: Path, models_dir: Path) -> None:
    broken = tmp_path / "models" / "detectors"
    broken.mkdir(parents=True)
    (broken / "yolox_nano_416.onnx").write_bytes(b"not a model at all")
    result = _run(
        [
            "serve",
            "--models-dir",
            str(tmp_path / "models"),
            "--data-dir",
            str(tmp_path / "data"),
            "--set",
            "models.download=false",
            "--set",
            "mqtt.enabled=false",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "sha256" in result.stderr and "yolox_nano_416.onnx" in result.stderr


def test_demo_runs_real_video_and_prints_decisions_and_a_summary(
    tmp_path: Path, models_dir: Path, video_dir: Path
) -> None:
    out = tmp_path / "snapshots"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = _run(
        [
            "demo",
            "--models-dir",
            str(models_dir),
            "--video",
            str(video_dir / "vtest.avi"),
            "--frames",
            "60",
            "--no-mqtt",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        tmpdir=scratch,
    )
    assert result.returncode == 0, result.stderr
    # Its throwaway identity store is gone afterwards; only the snapshots asked for remain.
    assert [p.name for p in scratch.iterdir() if p.name.startswith("smart-reid-demo")] == []
    text = result.stdout
    assert "cut into 2 side-by-side camera(s): left, right" in text
    assert "MQTT: off (--no-mqtt)" in text
    new_visits = [line for line in text.splitlines() if "NEW VISIT" in line]
    assert len(new_visits) >= 3
    alerts = int(text.split("alerts sent")[1].split()[0])
    baseline = int(text.split("per-camera baseline")[1].split()[0])
    assert alerts == len(new_visits)
    assert baseline >= alerts
    snapshots = sorted(out.glob("*.jpg"))
    assert snapshots and snapshots[0].read_bytes()[:2] == b"\xff\xd8"


def test_log_lines_go_to_the_current_stderr_after_it_was_replaced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CLI run in-process (tests, embedding) must not leave logging tied to a stderr that is
    later closed: every later line would print "Logging error ... I/O operation on closed
    file" instead of itself."""
    real = sys.stderr
    swapped = io.StringIO()
    sys.stderr = swapped
    try:
        setup_logging("warning")
    finally:
        sys.stderr = real
        swapped.close()
    logging.getLogger("smart_reid_server.test").warning("still heard")
    err = capsys.readouterr().err
    assert "still heard" in err
    assert "Logging error" not in err


# --- the demo and MQTT: a private broker by default, nothing retained left behind -------------


def _demo_args(models_dir: Path, video_dir: Path, frames: int, *extra: str) -> list[str]:
    return [
        "demo",
        "--models-dir",
        str(models_dir),
        "--video",
        str(video_dir / "vtest.avi"),
        "--frames",
        str(frames),
        *extra,
    ]


def _put_retained(host: str, port: int, messages: dict[str, bytes]) -> None:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:6]}"
    )
    client.connect(host, port)
    client.loop_start()
    try:
        for topic, payload in messages.items():
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def _retained(host: str, port: int, base: str) -> dict[str, bytes]:
    """Every retained message under ``base/`` now: a marker published after subscribing comes
    back only after the broker has sent the subscription's retained messages."""
    reader = MqttCollector(host, port, f"{base}/#")
    try:
        marker = f"{base}/test-marker/{uuid.uuid4().hex[:6]}"
        reader.client.publish(marker, b"x", qos=1)
        reader.wait_for(marker)
        return {m.topic: m.payload for m in reader.messages if m.retain and m.payload}
    finally:
        reader.close()


def test_demo_by_default_uses_a_private_broker_not_the_users(
    tmp_path: Path,
    models_dir: Path,
    video_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., MqttCollector],
) -> None:
    """The broker in the user's configuration, and the usual 127.0.0.1:1883, get nothing."""
    host, port = mosquitto_broker  # stands for the user's broker, configured by environment
    base = f"demo_test_{uuid.uuid4().hex[:6]}"
    users = mqtt_collector(host, port, "#")
    watched = [users]
    if demo_broker_reachable("127.0.0.1", 1883):  # only read from it; nothing is published
        watched.append(mqtt_collector("127.0.0.1", 1883, f"{base}/#"))
    env = _env(SMART_REID_MQTT__HOST=host, SMART_REID_MQTT__PORT=str(port))
    result = _run(
        _demo_args(models_dir, video_dir, 20, "--base-topic", base), cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "MQTT:" in x)
    assert "a private broker of the demo's own at 127.0.0.1:" in line, line
    private_port = int(line.split("127.0.0.1:")[1].split(",")[0])
    assert private_port not in (port, 1883)
    assert "NEW VISIT" in result.stdout
    for collector in watched:
        assert collector.messages == []


def test_demo_on_a_given_broker_leaves_its_retained_topics_as_it_found_them(
    tmp_path: Path,
    models_dir: Path,
    video_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., MqttCollector],
) -> None:
    host, port = mosquitto_broker
    base = "smart_reid_demo"
    # Left from before (someone else's): the demo must put these back, not delete them.
    before = {f"{base}/status": b"offline", f"{base}/person/0000feed0000/state": b'{"x": 1}'}
    _put_retained(host, port, before)
    seen = mqtt_collector(host, port, f"{base}/#")
    result = _run(
        _demo_args(models_dir, video_dir, 30, "--mqtt-host", host, "--mqtt-port", str(port)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"MQTT: publishing to {host}:{port} under {base}/ as asked" in result.stdout
    # It did publish what Home Assistant would pick up: the server, people, decisions (all
    # sent before its last word, ``offline``, on the same connection).
    seen.wait_for(f"{base}/status", lambda m: m.payload == b"offline" and not m.retain)
    assert seen.on(f"{base}/info") and seen.on(f"{base}/person/+/state", lambda m: m.payload)
    assert seen.on(f"{base}/events/new_person")
    assert "put back as they were" in result.stdout
    assert _retained(host, port, base) == before


# The demo as a terminal runs it: a shell starts background jobs (CI steps, too) with SIGINT
# ignored, and Python then never turns Ctrl-C into KeyboardInterrupt.
_AS_IN_A_TERMINAL = (
    "import runpy, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "sys.argv = ['smart-reid', *sys.argv[1:]]\n"
    "runpy.run_module('smart_reid_server', run_name='__main__', alter_sys=True)\n"
)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_demo_interrupted_still_clears_its_retained_topics(
    tmp_path: Path,
    models_dir: Path,
    video_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., MqttCollector],
    stop: signal.Signals,
) -> None:
    host, port = mosquitto_broker
    base = "demo_ctrl_c"
    seen = mqtt_collector(host, port, f"{base}/#")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _AS_IN_A_TERMINAL,
            *_demo_args(models_dir, video_dir, 0, "--mqtt-host", host, "--mqtt-port", str(port)),
            "--base-topic",
            base,
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Mid-run: the server and at least one person are retained on the broker.
        seen.wait_for(f"{base}/person/+/state", lambda m: bool(m.payload), within=90)
        assert _retained(host, port, base)
        process.send_signal(stop)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, output
    assert "interrupted" in output
    assert _retained(host, port, base) == {}


def test_demo_refuses_a_base_topic_where_a_server_is_online(
    tmp_path: Path, models_dir: Path, video_dir: Path, mosquitto_broker: tuple[str, int]
) -> None:
    host, port = mosquitto_broker
    live = {"smart_reid/status": b"online", "smart_reid/info": b'{"server_id": "real"}'}
    _put_retained(host, port, live)
    result = _run(
        _demo_args(
            models_dir,
            video_dir,
            10,
            "--mqtt-host",
            host,
            "--mqtt-port",
            str(port),
            "--base-topic",
            "smart_reid",
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "a Smart ReID server is online under smart_reid/" in result.stdout
    assert _retained(host, port, "smart_reid") == live
