"""Loaded before the integration's fixtures (and before anything imports Home Assistant's camera).

Home Assistant's camera component loads libjpeg-turbo's TurboJPEG library when it is imported and,
when the library is missing, logs an error with a full traceback. ``scripts/setup`` and
``scripts/test-ha-newest`` install it (``libturbojpeg0``, as root); where that was not possible,
the tests do not need it, so the message becomes one debug line without the traceback.
"""

from __future__ import annotations

import logging

_CAMERA_IMAGE_LOGGER = "homeassistant.components.camera.img_util"


class _TurboJpegMissingIsDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Error loading libturbojpeg"):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


logging.getLogger(_CAMERA_IMAGE_LOGGER).addFilter(_TurboJpegMissingIsDebug())

# pytest-homeassistant-custom-component turns SQLAlchemy's statement log on (INFO) for every
# test; the recorder test would print every SQL statement it runs. Warnings still show.
logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
