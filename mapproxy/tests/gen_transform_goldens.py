#!/usr/bin/env python3
"""Prints the goldens of image/transform.rs's `transform_is_mapproxys_pixel_for_pixel`: the
md5 of the pixels MapProxy 7's `ImageTransformer.transform` gives (Pillow's `EXTENT`
transform for the same SRS, `transform_meshes` and `MESH` for another) for deterministic
source images, as Rust tuples to paste there.

    /work/main/target/mapproxy-venv/bin/python mapproxy/tests/gen_transform_goldens.py

Sources (codec.rs's `golden_px`, shared with gen_png_goldens.py, and a paletted one):
`gradient` as an RGB image (opaque), `noise` and `map` as RGBA (partial alpha), `pal` as a
P image whose pixel (x, y) is palette index (x * 5 + y * 3) % 256, entry i being
(i * 3, i * 7, i * 11) % 256 (img_for_resampling makes it RGB unless nearest). The hash is of
the result's raw bytes: RGBA for an RGBA result, RGB for an RGB one, and for a P result
(nearest) its RGB conversion. The output names the Pillow version the goldens come from.
"""
import hashlib
import os
import sys

import PIL
from PIL import Image

from mapproxy.image import ImageResult
from mapproxy.image.opts import ImageOptions
from mapproxy.image.transform import ImageTransformer
from mapproxy.srs import SRS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_png_goldens import image  # noqa: E402  (codec.rs's golden_px, shared)

SOURCES = {
    # name: (golden_px name, width, height, mode)
    'gradient': ('gradient', 300, 200, 'RGB'),
    'noise': ('noise', 300, 200, 'RGBA'),
    'map': ('map', 600, 400, 'RGBA'),
    'pal': (None, 200, 150, 'P'),
}


def source(name):
    px_name, w, h, mode = SOURCES[name]
    if mode == 'P':
        img = Image.new('P', (w, h))
        img.putpalette([(i * k) % 256 for i in range(256) for k in (3, 7, 11)])
        img.putdata([(x * 5 + y * 3) % 256 for y in range(h) for x in range(w)])
        return img
    return image(px_name, w, h).convert(mode)


def same_srs_cases(w, h):
    """(name, dst_size, dst_bbox) for a source covering (0, 0, 10w, 10h) in EPSG:3857."""
    W, H = w * 10.0, h * 10.0
    return [
        ('up1.37', (256, 256), (123.4, 456.7, 123.4 + 256 * 7.3, 456.7 + 256 * 7.3)),
        ('down1.61', (140, 90), (77.7, 33.3, 77.7 + 140 * 16.1, 33.3 + 90 * 16.1)),
        ('outside', (250, 170), (-500.3, -300.7, W + 400.0, H + 250.0)),
        ('edge3.1', (160, 110), (W - 400.0, H - 300.0, W + 96.0, H + 41.0)),
        ('aniso', (120, 150), (1000.0, 200.0, 1000.0 + 120 * 12.5, 200.0 + 150 * 8.3)),
        ('crop', (100, 80), (125.0, 35.0, 1125.0, 835.0)),
    ]


REPROJECTIONS = [
    # (name, source, src_srs, src_bbox, dst_srs, dst_size, dst_bbox)
    ('3857-4326', 'map', 3857, (800000.0, 6000000.0, 1400000.0, 6400000.0),
     4326, (300, 250), (7.5, 47.3, 12.2, 49.5)),
    ('4326-3857', 'noise', 4326, (5.0, 45.0, 15.0, 52.0),
     3857, (400, 350), (600000.0, 5700000.0, 1600000.0, 6700000.0)),
    ('25832-3857', 'gradient', 25832, (300000.0, 5200000.0, 900000.0, 5600000.0),
     3857, (320, 200), (700000.0, 6000000.0, 1500000.0, 6500000.0)),
    ('world-3857-4326', 'map', 3857,
     (-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244),
     4326, (360, 180), (-180.0, -90.0, 180.0, 90.0)),
    ('pal-3857-4326', 'pal', 3857, (800000.0, 6000000.0, 1400000.0, 6400000.0),
     4326, (180, 150), (7.5, 47.3, 12.2, 49.5)),
]


def digest(img):
    if img.mode == 'P':
        img = img.convert('RGB')
    return hashlib.md5(img.tobytes()).hexdigest(), img.mode == 'RGB'


def run(src_name, src_srs, src_bbox, dst_srs, size, bbox, resampling):
    img = source(src_name)
    t = ImageTransformer(SRS(src_srs), SRS(dst_srs))
    res = t.transform(ImageResult(img), src_bbox, size, bbox,
                      ImageOptions(resampling=resampling))
    return digest(res.as_image())


def main():
    print(f'// Pillow {PIL.__version__}')
    for src_name, (_, w, h, _) in SOURCES.items():
        for case, size, bbox in same_srs_cases(w, h):
            for r in ('nearest', 'bilinear', 'bicubic'):
                md5, rgb = run(src_name, 3857, (0.0, 0.0, w * 10.0, h * 10.0), 3857,
                               size, bbox, r)
                print(f'("{src_name}", "{case}", "{r}", "{md5}", {str(rgb).lower()}),')
    for case, src_name, s_srs, s_bbox, d_srs, size, bbox in REPROJECTIONS:
        for r in ('nearest', 'bilinear', 'bicubic'):
            md5, rgb = run(src_name, s_srs, s_bbox, d_srs, size, bbox, r)
            print(f'("{src_name}", "{case}", "{r}", "{md5}", {str(rgb).lower()}),')


if __name__ == '__main__':
    main()
