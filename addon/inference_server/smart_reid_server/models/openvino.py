"""Importing OpenVINO quietly (one place, used by device detection and the runtimes)."""

from __future__ import annotations

import contextlib
import sys
from typing import Any


def import_openvino() -> Any:
    """Import OpenVINO with its usage telemetry off.

    Importing ``openvino`` sets up Intel's telemetry client, which reports the import (and ONNX
    reads) to Google Analytics from a forked process. A camera server has no business phoning
    home, and forking a multi-threaded process can deadlock. The client is a singleton, so
    creating it first with consent withdrawn silences every later use.
    """
    if "openvino" not in sys.modules:
        with contextlib.suppress(Exception):
            import openvino_telemetry

            client = openvino_telemetry.Telemetry(
                app_name="OpenVINO",
                tid="none",
                backend="ga4",
                enable_opt_in_dialog=False,
                disable_in_ci=True,
            )
            client.consent = False
    import openvino as ov

    with contextlib.suppress(Exception):
        from openvino.tools.ovc import telemetry

        telemetry.consent = False
    return ov
