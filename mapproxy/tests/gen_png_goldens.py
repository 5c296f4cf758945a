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

Then (`small_palettes_are_mapproxys_byte_for_byte` in codec.rs) images quantized to 2, 4 and
16 colours (packed rows, which Pillow filters), and (`kept_paletted_png_is_mapproxys_byte_for_byte`
in src/image/indexed.rs) paletted images as MapProxy keeps them: a `P` image (`pal_index`'s
indices, `pal_palette`'s entries, a `tRNS` or none) saved by Pillow as a source would send it,
opened again, cropped (TileSplitter's crop) and written by `img_to_buf` with 256 colours and with
none (`colors: 0`): written as it is when the palette has as many entries as the options have
colours, or no colours are asked for; quantized otherwise.
"""
import hashlib
import io
import math
import warnings

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

    print('// small palettes (quantized)')
    for name, w, h, colors in [('noise', 64, 64, 2), ('noise', 64, 64, 4), ('noise', 64, 64, 16),
                               ('map', 600, 400, 16), ('gradient', 5, 3, 4)]:
        img = image(name, w, h).convert('RGB')
        opts = ImageOptions(format='image/png', transparent=False, colors=colors)
        data = img_to_buf(img, opts).read()
        print(f'("{name}", {w}, {h}, {colors}, "{hashlib.md5(data).hexdigest()}", {len(data)}),')

    print('// kept paletted: (entries, tRNS, w, h, crop, colors, md5, len); crop None: the source')
    for n, trns, w, h in PAL_SOURCES:
        src = pal_source(n, trns, w, h)
        print(f'({n}, {rust_trns(trns)}, {w}, {h}, None, 0, "{hashlib.md5(src).hexdigest()}", {len(src)}),')
        for box in [(0, 0, w, h), (7, 5, 7 + 33, 5 + 20), (16, 16, 48, 48)]:
            crop = Image.open(io.BytesIO(src)).crop(box)
            for colors in [256, 0]:
                opts = ImageOptions(format='image/png', transparent=False, colors=colors)
                data = img_to_buf(crop, opts).read()
                print(f'({n}, {rust_trns(trns)}, {w}, {h}, Some({box}), {colors}, '
                      f'"{hashlib.md5(data).hexdigest()}", {len(data)}),')


# palette sizes (1, 2, 4 and 8 bits a pixel), with no tRNS, one transparent entry (an index)
# and alphas (bytes)
PAL_SOURCES = [(256, None, 64, 64), (256, 5, 64, 64), (200, b'\x00\x80\xff', 64, 64),
               (16, None, 64, 64), (16, b'\xff\x00\xff\xff', 64, 64), (4, 0, 64, 64),
               (2, None, 64, 64), (4, b'\x00\x80', 64, 64)]


def pal_palette(n):
    return [c for i in range(n) for c in ((i * 37) % 256, (i * 91) % 256, (i * 13 + 7) % 256)]


def pal_index(n, x, y):
    return (x // 3 + (y * y) // 7 + (x * y) // 11) % n


def pal_source(n, trns, w, h):
    img = Image.new('P', (w, h))
    img.putpalette(pal_palette(n))
    img.putdata([pal_index(n, x, y) for y in range(h) for x in range(w)])
    kw = {} if trns is None else {'transparency': trns}
    buf = io.BytesIO()
    img.save(buf, 'png', **kw)
    return buf.getvalue()


def rust_trns(trns):
    if trns is None:
        return 'None'
    if isinstance(trns, int):
        return f'Some(Trns::Index({trns}))'
    return f'Some(Trns::Alphas(vec!{list(trns)}))'


if __name__ == '__main__':
    # Pillow warns of tRNS alphas on P images, as MapProxy's own runs do
    warnings.simplefilter('ignore')
    main()
