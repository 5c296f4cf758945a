#!/usr/bin/env python3
"""Prints grid_cases.json: what the real MapProxy computes for a set of grids.

    python3 -m venv /tmp/mpv && /tmp/mpv/bin/pip install MapProxy==7.0.0
    /tmp/mpv/bin/python mapproxy/tests/gen_grid_cases.py > mapproxy/tests/grid_cases.json

The grids are built through MapProxy's own configuration loader (ProxyConfiguration), so
`base:`, `align_resolutions_with:` and the globals' defaults apply as in a mapproxy.yaml.
They are built in the order of BUILD_ORDER (the order matters for chained `base:`);
tests/grid.rs builds them in the same order.
"""
import json
import logging

import mapproxy.version
from mapproxy.config.loader import ProxyConfiguration
from mapproxy.grid import GridError, NoTiles

logging.disable(logging.WARNING)

GRIDS = {
    'wm10': {'base': 'GLOBAL_WEBMERCATOR', 'num_levels': 10},
    'utm': {
        'srs': 'EPSG:25832', 'bbox': [280000, 5200000, 920000, 6100000], 'origin': 'nw',
        'res': [1000, 4000, 2000, 500, 250, 100, 50, 25, 10, 5, 2.5, 1, 0.5],
        'tile_size': [512, 512],
    },
    'utm_minmax': {
        'srs': 'EPSG:25832', 'bbox': [280000, 5200000, 920000, 6100000],
        'min_res': 3000, 'max_res': 1,
    },
    'utm_minmax_n': {
        'srs': 'EPSG:25832', 'bbox': [280000, 5200000, 920000, 6100000], 'origin': 'ul',
        'min_res': 3000, 'max_res': 0.7, 'num_levels': 8,
    },
    'merc_sqrt2': {'base': 'GLOBAL_MERCATOR', 'res_factor': 'sqrt2'},
    'geo_de': {'srs': 'EPSG:4326', 'bbox': [5, 47, 16, 56], 'origin': 'ul', 'num_levels': 12},
    'geo_de_ll': {'srs': 'EPSG:4326', 'bbox': [5, 47, 16, 56], 'res_factor': 3, 'num_levels': 6},
    'aligned_sqrt2': {
        'srs': 'EPSG:3857', 'bbox': [500000, 5900000, 1700000, 7500000],
        'align_resolutions_with': 'GLOBAL_WEBMERCATOR', 'res_factor': 'sqrt2', 'num_levels': 6,
        'origin': 'nw',
    },
    'aligned_2': {
        'srs': 'EPSG:900913', 'align_resolutions_with': 'merc_sqrt2', 'res_factor': 2,
        'min_res': 50000, 'max_res': 10,
    },
    'thresholds': {
        'srs': 'EPSG:25832', 'bbox': [280000, 5200000, 920000, 6100000],
        'res': [2000, 1000, 500, 200, 100, 50, 20, 10],
        'threshold_res': [15, 1500, 300, 70, 5000],
        'stretch_factor': 1.3,
    },
    # 69.12 / 0.09 is 768.0000000000001 in floats but 69.12 // 0.09 is 768.0: MapProxy's
    # floor division gives 3 tile columns where plain division would give 4
    'floordiv': {'srs': 'EPSG:25832', 'bbox': [0, 0, 69.12, 69.12], 'res': [0.36, 0.18, 0.09], 'origin': 'ul'},
    'chain_mid': {'base': 'GLOBAL_WEBMERCATOR', 'num_levels': 5},
    'chain_late': {'base': 'chain_mid', 'tile_size': [512, 512]},
    'chain2_mid': {'base': 'GLOBAL_WEBMERCATOR', 'num_levels': 5},
    'chain2_late': {'base': 'chain2_mid', 'tile_size': [512, 512]},
}

# chain_late is built before chain_mid; chain2_mid before chain2_late
BUILD_ORDER = [
    'GLOBAL_GEODETIC', 'GLOBAL_MERCATOR', 'GLOBAL_WEBMERCATOR',
    'wm10', 'utm', 'utm_minmax', 'utm_minmax_n', 'merc_sqrt2', 'geo_de', 'geo_de_ll',
    'aligned_sqrt2', 'aligned_2', 'thresholds', 'floordiv',
    'chain_late', 'chain_mid', 'chain2_mid', 'chain2_late',
]


def sample_levels(grid):
    n = grid.levels
    return sorted({0, 1, 2, min(5, n - 1), n // 2, n - 1} & set(range(n)))


def sample_bboxes(grid):
    x0, y0, x1, y1 = grid.bbox
    w, h = x1 - x0, y1 - y0
    return [
        list(grid.bbox),
        [x0 + w * 0.25, y0 + h * 0.3, x0 + w * 0.6, y0 + h * 0.55],
        [x0 + w * 0.5, y0 + h * 0.5, x0 + w * 0.5001, y0 + h * 0.5002],
        [x0 - w * 0.2, y0 - h * 0.1, x0 + w * 0.3, y0 + h * 0.2],
        [x0 + w * 0.9, y0 + h * 0.8, x1 + w * 0.3, y1 + h * 0.4],
        [x0 + w * 0.7, y0 + h * 0.7, x0 + w * 0.2, y0 + h * 0.9],
    ]


def affected(grid, bbox, level):
    try:
        abbox, size, tiles = grid.get_affected_level_tiles(bbox, level)
    except GridError as e:
        return {'bbox': bbox, 'level': level, 'error': type(e).__name__}
    out = {'bbox': bbox, 'level': level, 'tiles_bbox': list(abbox), 'grid_size': list(size)}
    if size[0] * size[1] <= 300:
        out['tiles'] = [list(t) if t is not None else None for t in tiles]
    return out


def case(grid):
    out = {
        'name': grid.name, 'srs': grid.srs.srs_code, 'bbox': list(grid.bbox),
        'origin': grid.origin, 'tile_size': list(grid.tile_size),
        'resolutions': list(grid.resolutions.values()),
        'grid_sizes': [list(s) for s in grid.grid_sizes.values()],
        'threshold_res': grid.threshold_res,
        'stretch_factor': grid.stretch_factor, 'max_shrink_factor': grid.max_shrink_factor,
        'supports_ll': grid.supports_access_with_origin('ll'),
        'supports_ul': grid.supports_access_with_origin('ul'),
    }
    levels = sample_levels(grid)
    tile_bboxes = []
    for z in levels:
        cols, rows = grid.grid_sizes[z]
        for (x, y) in [(0, 0), (cols - 1, rows - 1), (cols // 2, rows // 3), (-1, 2), (cols, rows)]:
            for limit in (False, True):
                tile_bboxes.append({'coord': [x, y, z], 'limit': limit,
                                    'bbox': list(grid.tile_bbox((x, y, z), limit=limit))})
    out['tile_bboxes'] = tile_bboxes

    x0, y0, x1, y1 = grid.bbox
    w, h = x1 - x0, y1 - y0
    points = [(x0, y0), (x1, y1), (x0 + w / 2, y0 + h / 2), (x0 + w * 0.123, y0 + h * 0.987),
              (x0 - w * 0.5, y1 + h), (x0 + w * 0.75, y0 + h * 0.25)]
    out['points'] = [{'point': list(p), 'level': z, 'tile': list(grid.tile_coord_for_point(p[0], p[1], z))}
                     for z in levels for p in points]

    coords = [(0, 0, 0), (1, 1, 1), (3, 0, 2), (-1, 0, 1), (0, 5, 2), (2, 1, grid.levels - 1),
              (0, 0, grid.levels)]
    out['limit_tile'] = [{'coord': list(c), 'result': (list(r) if (r := grid.limit_tile(c)) else None)}
                         for c in coords]
    out['flip'] = [{'coord': list(c), 'result': list(grid.flip_tile_coord(c))}
                   for c in coords if 0 <= c[2] < grid.levels]

    res_samples = []
    for r in grid.resolutions.values():
        for f in (1.0, 1.1, 1.16, 1.2, 0.9, 0.5, 2.0, 1.5):
            res_samples.append(r * f)
    res_samples += [1e12, 1e-12]
    if grid.threshold_res:
        for t in grid.threshold_res:
            res_samples += [t, t * 1.01, t * 0.99]
    out['closest_level'] = [{'res': r, 'level': grid.closest_level(r)} for r in res_samples]

    out['affected_level_tiles'] = [affected(grid, b, z)
                                   for z in levels[:4] for b in sample_bboxes(grid)]

    reqs = []
    for b in sample_bboxes(grid)[:5]:
        for size in [(256, 256), (1000, 600), (3, 2)]:
            r = {'bbox': b, 'size': list(size)}
            try:
                sbbox, level = grid.get_affected_bbox_and_level(b, size)
                r['level'] = level
            except NoTiles:
                r['error'] = 'NoTiles'
            reqs.append(r)
    out['affected_bbox_and_level'] = reqs
    return out


def main():
    conf = ProxyConfiguration({'grids': json.loads(json.dumps(GRIDS))})
    grids = []
    for name in BUILD_ORDER:
        grid = conf.grids[name].tile_grid()
        grids.append(case(grid))
    head = {
        'mapproxy_version': mapproxy.version.version,
        'generator': 'mapproxy/tests/gen_grid_cases.py',
        'confs': GRIDS,
        'build_order': BUILD_ORDER,
    }
    # one line per grid keeps the file small and its diffs readable
    lines = ['{']
    for key, value in head.items():
        lines.append(' %s: %s,' % (json.dumps(key), json.dumps(value)))
    lines.append(' "grids": [')
    lines.append(',\n'.join('  ' + json.dumps(g, separators=(',', ':')) for g in grids))
    lines.append(' ]')
    lines.append('}')
    print('\n'.join(lines))

if __name__ == '__main__':
    main()
