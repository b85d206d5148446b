#!/usr/bin/env python3
"""Draw the App's icon.png (128x128) and logo.png (250x100) from the integration's brand images.

The App store shows these (addon/icon.png, addon/logo.png); they are the same picture as the
integration's (scripts/make_brand.py), scaled with Lanczos. Run again after make_brand.py:
`.venv/bin/python scripts/make_app_images.py`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BRAND = ROOT / "custom_components" / "smart_reid" / "brand"
APP = ROOT / "addon"
ICON_SIZE = (128, 128)
LOGO_SIZE = (250, 100)


def main() -> None:
    icon = Image.open(BRAND / "icon@2x.png").convert("RGBA")
    icon.resize(ICON_SIZE, Image.Resampling.LANCZOS).save(APP / "icon.png", optimize=True)
    logo = Image.open(BRAND / "logo@2x.png").convert("RGBA")
    scale = min(LOGO_SIZE[0] / logo.width, LOGO_SIZE[1] / logo.height)
    fitted = logo.resize(
        (round(logo.width * scale), round(logo.height * scale)), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGBA", LOGO_SIZE, (0, 0, 0, 0))
    canvas.paste(
        fitted, ((LOGO_SIZE[0] - fitted.width) // 2, (LOGO_SIZE[1] - fitted.height) // 2), fitted
    )
    canvas.save(APP / "logo.png", optimize=True)
    print(f"wrote {APP / 'icon.png'} {ICON_SIZE} and {APP / 'logo.png'} {LOGO_SIZE}")


if __name__ == "__main__":
    main()
