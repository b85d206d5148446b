"""``smart-reid``: serve, demo, models list|fetch|verify, check-config.

Configuration problems and model problems are the two things a user most often gets wrong, so
both end in one clear line on stderr and exit code 2, never in a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from . import __version__
from .config import ConfigError, Settings, load, parse_assignments
from .logging_setup import setup_logging
from .models.download import ModelManager
from .models.errors import ModelError
from .models.registry import REGISTRY, ModelSpec, detector_spec, reid_spec

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", help="identities, models cache, snapshots")
    parser.add_argument("--models-dir", metavar="DIR", help="local folder with model files")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override any key, e.g. --set visits.window_s=90 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smart-reid",
        description="Cross-camera person re-identification: one alert per person per visit.",
    )
    parser.add_argument("--version", action="version", version=f"smart-reid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the inference server")
    _common(serve)
    serve.add_argument("--mqtt-host", metavar="HOST")
    serve.add_argument("--mqtt-port", metavar="PORT", type=int)
    serve.add_argument("--http-host", metavar="HOST")
    serve.add_argument("--http-port", metavar="PORT", type=int)

    demo = sub.add_parser("demo", help="run real video through the whole pipeline")
    _common(demo)
    demo.add_argument("--video", metavar="PATH", help="video file (default: shared vtest.avi)")
    demo.add_argument("--cameras", type=int, default=2, help="virtual cameras (strips), 1-4")
    demo.add_argument("--frames", type=int, default=0, help="stop after N video frames (0: all)")
    demo.add_argument("--step", type=int, default=2, help="use every Nth video frame")
    demo.add_argument("--out", metavar="DIR", help="annotated snapshots (default: a temp dir)")
    demo.add_argument(
        "--mqtt-host",
        metavar="HOST",
        help="publish to this broker instead of a private one (e.g. to watch the demo in Home "
        "Assistant); its retained messages are cleared at exit",
    )
    demo.add_argument(
        "--mqtt-port", metavar="PORT", type=int, help="port of --mqtt-host (default 1883)"
    )
    demo.add_argument(
        "--base-topic",
        metavar="TOPIC",
        default="smart_reid_demo",
        help="MQTT base topic of the demo (default smart_reid_demo)",
    )
    demo.add_argument("--no-mqtt", action="store_true", help="no MQTT at all, not even privately")
    demo.add_argument("--verbose", action="store_true", help="print every sighting")

    models = sub.add_parser("models", help="list, fetch or verify model files")
    models.add_argument("action", choices=["list", "fetch", "verify"])
    models.add_argument("names", nargs="*", help="model names (default: the configured ones)")
    _common(models)

    check = sub.add_parser("check-config", help="validate the configuration and print it")
    _common(check)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Config file, then environment, then ``--set``, then the dedicated flags."""
    overrides: dict[str, Any] = parse_assignments(list(args.set or []))

    def put(dotted: str, value: Any) -> None:
        if value is None:
            return
        node = overrides
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    put("data_dir", getattr(args, "data_dir", None))
    put("models.dir", getattr(args, "models_dir", None))
    if args.command == "serve":
        put("mqtt.host", args.mqtt_host)
        put("mqtt.port", args.mqtt_port)
        put("http.host", args.http_host)
        put("http.port", args.http_port)
    return load(args.config, overrides=overrides)


def _serve(settings: Settings) -> int:
    from .serve.app import SmartReidApp, StartupError

    setup_logging(str(settings.raw["log_level"]))
    app: SmartReidApp | None = None
    if settings.section("cluster")["role"] == "worker":
        from .cluster.roles import run_worker

        runner: Any = run_worker(settings)
    else:
        app = SmartReidApp(settings)
        runner = app.run()
    try:
        asyncio.run(runner)
    except (ModelError, StartupError) as err:
        print(f"smart-reid: cannot start: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    return app.exit_code if app is not None else EXIT_OK


def _specs(settings: Settings, wanted: Sequence[str]) -> list[ModelSpec]:
    if wanted:
        unknown = [n for n in wanted if n not in REGISTRY]
        if unknown:
            raise ModelError(
                f"unknown model(s) {', '.join(unknown)}; `smart-reid models list` shows the names"
            )
        return [REGISTRY[n] for n in wanted]
    models_cfg = settings.section("models")
    return [detector_spec(models_cfg), reid_spec(models_cfg)]


def _models(settings: Settings, action: str, wanted: Sequence[str]) -> int:
    models_cfg = settings.section("models")
    manager = ModelManager.from_config(models_cfg, settings.data_dir)
    if action == "list":
        configured = {s.name for s in _specs(settings, [])}
        for spec in REGISTRY.values():
            mark = "*" if spec.name in configured else " "
            threshold = (
                "" if spec.default_threshold is None else f" threshold {spec.default_threshold}"
            )
            kind = spec.kind if spec.is_reid or spec.kind != "reid" else "reid (generic, not ReID)"
            print(f"{mark} {spec.name:42s} {kind:9s} {spec.runtime:11s}{threshold}")
        print("* = configured (models.detector / models.reid)")
        return EXIT_OK
    if action == "verify":
        manager.download = False
        manager.verify = True
    setup_logging("info" if action == "fetch" else "warning")
    failed = 0
    for spec in _specs(settings, wanted):
        try:
            files = manager.resolve(spec)
        except ModelError as err:
            failed += 1
            print(f"FAIL {spec.name}: {err}")
            continue
        where = ", ".join(str(p) for p in files.values())
        print(f"ok   {spec.name}: {where}")
    return EXIT_FAILED if failed else EXIT_OK


def _check_config(settings: Settings) -> int:
    print("configuration OK")
    print(yaml.safe_dump(settings.redacted(), sort_keys=False).rstrip())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ConfigError as err:
        print(f"smart-reid: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "serve":
            return _serve(settings)
        if args.command == "models":
            return _models(settings, args.action, args.names)
        if args.command == "check-config":
            return _check_config(settings)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(settings, args)
    except ModelError as err:
        print(f"smart-reid: {err}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE


__all__ = ["build_parser", "main", "settings_from_args"]
