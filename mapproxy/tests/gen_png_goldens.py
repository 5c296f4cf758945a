#!/usr/bin/env python3
"""Prints the md5 and length of the PNGs MapProxy 7 writes for the test images of
src/image/codec.rs (`paletted_png_is_mapproxys_byte_for_byte`,
`truecolour_png_is_mapproxys_byte_for_byte`), as Rust tuples to paste there.

    python3 -m venv /tmp/mpv && /tmp/mpv/bin/pip install MapProxy==7.0.0
    /tmp/mpv/bin/python mapproxy/tests/gen_png_goldens.py

Each image is `Image.new('RGBA', size)` filled with `px`'s pixels (codec.rs's `golden_px`
repeats them) and encoded by MapProxy's own `img_to_buf`: paletted with 256 colours (Pillow's
FASTOCTREE, zlib Z_RLE), and truecolour with `colors=0`, as `paletted: false` gives (RGB when
not transparent, as MapProxy holds an opaque image; Pillow's row filters, zlib Z_FILTERED).
The goldens in codec.rs were printed with Pillow 13.0.0 on zlib 1.2.13.
"""
import hashlib
import math

from PIL import Image
from mapproxy.image import img_to_buf
from mapproxy.image.opts import ImageOptions


def px(name, x, y):
    if name == 'gradient':
        return (x % 256, y % 256, (x ^ y) % 256, 255)
    if name == 'gradient_alpha':
        return (x % 256, y % 256, (x ^ y) % 256, (x // 2) % 256)
    if name == 'few':
        if y == 10:
            return (200, 0, 0, 255)
        if y == 20:
            return (0, 0, 200, 0)
        return (255, 255, 255, 255)
    if name == 'noise':
        v = (x * 7919 + y * 104729 + x * y * 31) % 65521
        return (v % 256, (v >> 3) % 256, (x * 3 + y) % 256, 255 if (x + y) % 7 else (v % 200))
    if name == 'map':
        # a map-like image: a few flat areas with anti-aliased edges
        d = math.sqrt((x - 300) ** 2 + (y - 200) ** 2)
        if d < 150:
            base = (170, 211, 223)
        elif d < 152:
            base = (int(170 + (d - 150) * 30), 200, 180)
        else:
            base = (242, 239, 233)
        if abs(x - y) < 2:
            base = (230, 50, 50)
        return base + (255 if x > 5 else 128,)
    raise KeyError(name)


def image(name, w, h):
    img = Image.new('RGBA', (w, h))
    img.putdata([px(name, x, y) for y in range(h) for x in range(w)])
    return img


def show(name, w, h, transparent, data):
    md5 = hashlib.md5(data).hexdigest()
    print(f'("{name}", {w}, {h}, {str(transparent).lower()}, "{md5}", {len(data)}),')


def main():
    print('// paletted')
    for name, w, h, transparent in [
            ('gradient', 256, 256, False), ('gradient_alpha', 256, 256, True),
            ('few', 256, 256, True), ('few', 256, 256, False),
            ('noise', 256, 256, False), ('noise', 256, 256, True),
            ('noise', 700, 500, False), ('map', 600, 400, True), ('map', 600, 400, False),
            ('gradient', 5, 3, True)]:
        opts = ImageOptions(format='image/png', transparent=transparent, colors=256)
        show(name, w, h, transparent, img_to_buf(image(name, w, h), opts).read())

    print('// truecolour')
    for name, w, h, transparent in [
            ('gradient', 256, 256, False), ('gradient_alpha', 256, 256, True),
            ('few', 256, 256, True), ('few', 256, 256, False),
            ('noise', 256, 256, False), ('noise', 256, 256, True),
            ('noise', 700, 500, False), ('noise', 700, 500, True),
            ('map', 600, 400, True), ('map', 600, 400, False),
            ('gradient', 5, 3, True), ('gradient', 5, 3, False), ('gradient', 1, 1, False)]:
        img = image(name, w, h)
        if not transparent:
            img = img.convert('RGB')
        opts = ImageOptions(format='image/png', transparent=transparent, colors=0)
        show(name, w, h, transparent, img_to_buf(img, opts).read())


if __name__ == '__main__':
    main()
