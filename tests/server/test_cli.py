"""The ``smart-reid`` command: configuration checks, model commands, start-up errors, the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from smart_reid_server.cli import main

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


def _run(
    args: list[str], cwd: Path, timeout: float = 120, tmpdir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_REID_")}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
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
