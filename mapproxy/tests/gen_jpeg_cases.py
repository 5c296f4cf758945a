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
import os
import sys

import PIL
from PIL import Image, features

from mapproxy.image import img_to_buf
from mapproxy.image.opts import ImageOptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_png_goldens import px  # noqa: E402  (codec.rs's golden_px, shared)


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
