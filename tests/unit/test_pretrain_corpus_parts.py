"""The pretraining corpus's pure parts: near-identical detection, the frame renderer, the npm
integrity check, and the multilingual emoji names."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vidsearch.ops.datasets.format import DatasetError
from vidsearch.ops.datasets.pretrain.dedup import near_duplicates, signature
from vidsearch.ops.datasets.pretrain.packages import NpmPackage, integrity_of, unpacked
from vidsearch.ops.datasets.pretrain.render import FRAME, IconError, load_icon, render
from vidsearch.ops.datasets.pretrain.sources import emoji_names, hex_key, merge_texts

pytestmark = pytest.mark.unit


def _icon(shape: str, colour: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    if shape == "circle":
        d.ellipse((8, 8, 56, 56), fill=(*colour, 255))
    else:
        d.polygon([(32, 4), (60, 60), (4, 60)], fill=(*colour, 255))
    return img


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    flat = Image.new("RGB", img.size, (255, 255, 255))
    flat.paste(img, (0, 0), img)
    buf = io.BytesIO()
    flat.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGBA")


def test_a_recompressed_copy_is_near_identical_and_other_shapes_or_colours_are_not() -> None:
    red_circle = _icon("circle", (220, 30, 30))
    sigs = [signature(x) for x in (red_circle, _icon("triangle", (220, 30, 30)), _jpeg(red_circle, 40),
                                   _icon("circle", (30, 30, 220)))]
    assert near_duplicates(sigs) == [None, None, 0, None]


def test_render_is_a_frame_sized_rgb_image_and_the_same_for_the_same_seed() -> None:
    icon = _icon("circle", (10, 200, 10))
    a, b, c = render(icon, 7), render(icon, 7), render(icon, 8)
    assert a.size == FRAME and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_an_unreadable_or_undrawable_icon_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "bad.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'><path marker-end='url(#nowhere)' d='M0 0L9 9'/>")
    with pytest.raises(IconError):
        load_icon(tmp_path / "bad.png")
    try:
        load_icon(tmp_path / "bad.svg")
    except IconError:
        pass  # cairosvg may refuse it; then it must be an IconError, nothing else


def test_a_tarball_that_does_not_match_its_pinned_integrity_is_refused_and_removed(tmp_path: Path) -> None:
    pkg = NpmPackage("left-pad", "1.0.0", integrity_of(b"the real bytes"), "MIT")
    tgz = tmp_path / "npm" / f"{pkg.slug}.tgz"
    tgz.parent.mkdir(parents=True)
    tgz.write_bytes(b"tampered bytes")
    with pytest.raises(DatasetError, match="integrity"):
        unpacked(pkg, tmp_path)
    assert not tgz.exists()


def test_emoji_names_come_in_several_languages_with_or_without_the_variation_selector() -> None:
    cat = emoji_names("1F408")
    assert cat["en"] == ["cat"] and cat["de"] == ["katze"] and cat["fr"] == ["chat"]
    assert emoji_names("2764-FE0F")["en"] == emoji_names("2764")["en"]
    assert emoji_names("E000") == {}
    assert hex_key("0023-FE0F-20E3") == "23-20e3"


def test_merging_names_keeps_order_and_drops_case_duplicates() -> None:
    assert merge_texts({"en": ["Cat", "kitty"]}, {"en": ["cat", "feline"], "de": ["Katze"]}) == {
        "en": ["Cat", "kitty", "feline"], "de": ["Katze"]}
