"""A contact sheet for a person to judge the threshold: the largest groups, then leaked pairs.

Each row is a caption and a strip of thumbnails: the members of one near-duplicate group (first
line first, the one a merged build keeps), or an evaluation image beside the training image
that copies it, with their Hamming distance. Too loose a `dedup.max_distance` shows up as rows of
different pictures; too tight a one as few rows.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from mlimages.dedup.analysis import Group, Leak
from mlimages.dedup.hashes import HashTable

MAX_PER_ROW = 8
CAPTION_PX = 14
PAD_PX = 4
BACKGROUND, INK = (255, 255, 255), (0, 0, 0)


def _thumbnail(table: HashTable, row: int, side: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(table.read_image(row))) as image:
            image.draft("RGB", (side, side))
            return ImageOps.pad(ImageOps.exif_transpose(image).convert("RGB"), (side, side), color=BACKGROUND)
    except Exception:  # noqa: BLE001 - a sheet for people must not fail on one odd file
        return Image.new("RGB", (side, side), (200, 200, 200))


def _strips(train: HashTable, groups: list[Group], evaluations: dict[str, HashTable], leaks: list[Leak],
            side: int) -> list[tuple[str, list[Image.Image]]]:
    strips = []
    for number, group in enumerate(groups, start=1):
        kind = "exact copies" if group.exact else "near-duplicates"
        caption = f"group {number}: {len(group.rows)} {kind}, first kept: {train.name(group.rows[0])}"
        strips.append((caption, [_thumbnail(train, row, side) for row in group.rows[:MAX_PER_ROW]]))
    for leak in leaks:
        evaluation = evaluations[leak.eval_set]
        caption = (f"leaked into {leak.eval_set} (distance {leak.distance}): "
                   f"{evaluation.record_filename(leak.eval_row)} <- train {train.name(leak.train_row)}")
        strips.append((caption, [_thumbnail(evaluation, leak.eval_row, side), _thumbnail(train, leak.train_row, side)]))
    return strips


def write_contact_sheet(path, train: HashTable, groups: list[Group], evaluations: dict[str, HashTable],
                        leaks: list[Leak], side: int, title: str) -> None:
    """Draw the groups and leaked pairs given (already cut to what should be shown) into a PNG."""
    strips = _strips(train, groups, evaluations, leaks, side)
    width = max(640, MAX_PER_ROW * (side + PAD_PX) + PAD_PX)
    row_height = CAPTION_PX + side + 2 * PAD_PX
    sheet = Image.new("RGB", (width, CAPTION_PX + PAD_PX + max(1, len(strips)) * row_height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD_PX, 2), title if strips else f"{title}: nothing found", fill=INK)
    top = CAPTION_PX + PAD_PX
    for caption, images in strips:
        draw.text((PAD_PX, top), caption[:width // 6], fill=INK)
        for column, image in enumerate(images):
            sheet.paste(image, (PAD_PX + column * (side + PAD_PX), top + CAPTION_PX))
        top += row_height
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
