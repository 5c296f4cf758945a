#!/usr/bin/env python3
"""Prints the goldens of image/codec.rs's `jpeg_is_mapproxys_byte_for_byte`: md5 and length
of the JPEGs MapProxy 7 writes for a set of deterministic test images.

    /work/main/target/mapproxy-venv/bin/python mapproxy/tests/gen_jpeg_cases.py

Each image is `Image.new('RGBA', (w, h))` filled with the pixels of codec.rs's `golden_px`
(the same formulas below) and encoded by MapProxy's own `img_to_buf` as `image/jpeg`, at the
default `jpeg_quality` (90) or with `encoding_options.jpeg_quality`; `img_to_buf` converts to
RGB (the alpha is dropped, not composited) and calls Pillow's `save(buf, 'jpeg', quality=Q)`.
The output names the Pillow and libjpeg(-turbo) versions the goldens come from. With a
directory argument the JPEGs are also written there (`name_WxH_qQ.jpg`), to compare bytes.
"""
import hashlib
import io
import math
import os
import sys

import PIL
from PIL import Image, features

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
        a = 255 if (x + y) % 7 != 0 else (v % 200)
        return (v % 256, (v >> 3) % 256, (x * 3 + y) % 256, a)
    if name == 'map':
        d = math.sqrt((x - 300) ** 2 + (y - 200) ** 2)
        if d < 150.0:
            c = (170, 211, 223)
        elif d < 152.0:
            c = (int(170.0 + (d - 150.0) * 30.0), 200, 180)
        else:
            c = (242, 239, 233)
        if abs(x - y) < 2:
            c = (230, 50, 50)
        return c + (255 if x > 5 else 128,)
    raise ValueError(name)


# (image, width, height, jpeg_quality or None for MapProxy's default)
CASES = [
    ('gradient', 256, 256, None),
    ('gradient', 256, 256, 75),
    ('gradient_alpha', 256, 256, None),
    ('few', 256, 256, None),
    ('noise', 256, 256, None),
    ('noise', 256, 256, 75),
    ('noise', 100, 37, None),
    ('noise', 700, 500, 95),
    ('map', 600, 400, None),
    ('map', 100, 37, 75),
    ('gradient', 5, 3, None),
    ('gradient', 17, 9, 100),
    ('noise', 33, 1, 1),
]


def main():
    print(f'# Pillow {PIL.__version__}, libjpeg_turbo {features.version("libjpeg_turbo")}')
    for name, w, h, q in CASES:
        img = Image.new('RGBA', (w, h))
        img.putdata([px(name, x, y) for y in range(h) for x in range(w)])
        opts = ImageOptions(format='image/jpeg')
        if q is not None:
            opts.encoding_options = {'jpeg_quality': q}
        data = img_to_buf(img, opts).getvalue()
        qs = 'None' if q is None else str(q)
        if len(sys.argv) > 1:
            with open(os.path.join(sys.argv[1], f'{name}_{w}x{h}_q{qs}.jpg'), 'wb') as f:
                f.write(data)
        print(f'("{name}", {w}, {h}, {qs}, "{hashlib.md5(data).hexdigest()}", {len(data)}),')


if __name__ == '__main__':
    main()

# The pixels Pillow decodes from its JPEGs (RGBA bytes, md5), for codec.rs's
# `jpeg_decodes_as_pillow`.
print('// decoded')
for name, w, h, q in [('noise', 256, 256, 90), ('map', 600, 400, 90), ('noise', 100, 37, 75),
                      ('gradient', 17, 9, 100)]:
    img = Image.new('RGBA', (w, h))
    img.putdata([px(name, x, y) for y in range(h) for x in range(w)])
    jpeg = img_to_buf(img, ImageOptions(format='image/jpeg',
                                        encoding_options={'jpeg_quality': q})).read()
    rgba = Image.open(io.BytesIO(jpeg)).convert('RGBA').tobytes()
    print(f'("{name}", {w}, {h}, {q}, "{hashlib.md5(rgba).hexdigest()}"),')
