#!/usr/bin/env python3
"""Draw the integration's brand images (custom_components/smart_reid/brand/) with Pillow.

The picture: two person silhouettes, one on each of two camera frames, joined by a link, on
a dark rounded square; it says what Smart ReID does (the same person across cameras) without
words. Run again after changing it: `.venv/bin/python scripts/make_brand.py`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "custom_components" / "smart_reid" / "brand"
BACKGROUND = (24, 38, 58, 255)
FRAME = (96, 165, 250, 255)
PERSON = (250, 250, 250, 255)
LINK = (52, 211, 153, 255)


def _person(draw: ImageDraw.ImageDraw, cx: float, top: float, height: float) -> None:
    head = height * 0.22
    draw.ellipse((cx - head / 2, top, cx + head / 2, top + head), fill=PERSON)
    body_top = top + head * 1.1
    width = height * 0.42
    draw.rounded_rectangle(
        (cx - width / 2, body_top, cx + width / 2, top + height),
        radius=width * 0.35,
        fill=PERSON,
    )


def icon(size: int) -> Image.Image:
    """Square icon: a link between two framed people."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    s = size / 256
    draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=48 * s, fill=BACKGROUND)
    for x0 in (28, 140):
        draw.rounded_rectangle(
            (x0 * s, 64 * s, (x0 + 88) * s, 192 * s),
            radius=14 * s,
            outline=FRAME,
            width=max(2, round(8 * s)),
        )
        _person(draw, (x0 + 44) * s, 80 * s, 100 * s)
    draw.line((116 * s, 128 * s, 140 * s, 128 * s), fill=LINK, width=max(2, round(12 * s)))
    for cx in (116, 140):
        r = 10 * s
        draw.ellipse((cx * s - r, 128 * s - r, cx * s + r, 128 * s + r), fill=LINK)
    return image


def logo(height: int = 256) -> Image.Image:
    """Icon followed by the name, for places with room for a wordmark."""
    mark = icon(height)
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", int(height * 0.42))
    except OSError:
        font = ImageFont.load_default(size=int(height * 0.42))
    text = "Smart ReID"
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = (int(v) for v in probe.textbbox((0, 0), text, font=font))
    width = height + int(height * 0.15) + (right - left) + int(height * 0.1)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    image.paste(mark, (0, 0), mark)
    draw = ImageDraw.Draw(image)
    draw.text(
        (height + int(height * 0.15) - left, (height - (bottom - top)) / 2 - top),
        text,
        font=font,
        fill=BACKGROUND,
    )
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    icon(256).save(OUT / "icon.png", optimize=True)
    icon(512).save(OUT / "icon@2x.png", optimize=True)
    logo(256).save(OUT / "logo.png", optimize=True)
    logo(512).save(OUT / "logo@2x.png", optimize=True)
    print(f"wrote brand images to {OUT}")


if __name__ == "__main__":
    main()
