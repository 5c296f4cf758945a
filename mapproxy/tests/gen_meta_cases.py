#!/usr/bin/env python3
"""Prints meta_cases.json: what the real MapProxy's MetaGrid computes (mapproxy/grid/meta_grid.py).

    /tmp/mpv/bin/python mapproxy/tests/gen_meta_cases.py > mapproxy/tests/meta_cases.json

For each grid (built with MapProxy's tile_grid()), meta size and buffer: the meta tile of
some tiles (bbox with the buffer, clipped at the grid bbox; pixel size; tiles with their
pixel offsets, None outside the grid) and minimal meta tiles of tile lists
(minimize_meta_requests). tests/meta.rs builds the same grids and compares.
"""
import json

import mapproxy.version
from mapproxy.grid.tile_grid import tile_grid
from mapproxy.grid.meta_grid import MetaGrid

GRIDS = {
    'geodetic': dict(srs=4326, origin='sw'),
    'mercator': dict(srs=900913, origin='sw'),
    'webmercator': dict(srs=3857, origin='nw'),
    'local_nw': dict(srs=25832, bbox=(280000, 5200000, 920000, 6100000), origin='nw',
                     res=[4000, 2000, 1000, 500, 250, 100], tile_size=(256, 256)),
    'local_sw_512': dict(srs=25832, bbox=(280000, 5200000, 920000, 6100000), origin='sw',
                         res=[2000, 1000, 500, 100], tile_size=(512, 512)),
}

METAS = [((4, 4), 80), ((2, 3), 0), ((1, 1), 0), ((3, 2), 10), ((4, 4), 300)]

COORDS = [(0, 0, 0), (0, 0, 1), (1, 0, 1), (3, 2, 2), (0, 3, 2), (5, 6, 3), (7, 7, 3),
          (2, 1, 3), (4, 5, 4), (15, 15, 4), (0, 15, 4)]

MINIMAL = [[(0, 0, 2), (1, 1, 2)], [(2, 1, 3), (3, 1, 3), (4, 2, 3)], [(1, 1, 1)],
           [(5, 3, 4), (5, 4, 4), (6, 3, 4)]]


def tiles(mt):
    return [[list(t) if t is not None else None, list(off)] for t, off in mt.tile_patterns]


def main():
    out = {'mapproxy_version': mapproxy.version.version,
           'generator': 'mapproxy/tests/gen_meta_cases.py', 'grids': {}, 'cases': []}
    for name, conf in GRIDS.items():
        grid = tile_grid(**conf)
        out['grids'][name] = {
            'srs': grid.srs.srs_code, 'bbox': list(grid.bbox), 'origin': conf['origin'],
            'tile_size': list(grid.tile_size), 'resolutions': [grid.resolution(i) for i in range(grid.levels)],
        }
        for meta_size, buf in METAS:
            mg = MetaGrid(grid, meta_size=meta_size, meta_buffer=buf)
            for c in COORDS:
                if c[2] >= grid.levels:
                    continue
                gs = grid.grid_sizes[c[2]]
                if c[0] >= gs[0] or c[1] >= gs[1]:
                    continue
                mt = mg.meta_tile(c)
                out['cases'].append({
                    'grid': name, 'meta_size': list(meta_size), 'meta_buffer': buf,
                    'kind': 'meta_tile', 'tile': list(c), 'main_tile': list(mg.main_tile(c)),
                    'bbox': list(mt.bbox), 'size': list(mt.size), 'grid_size': list(mt.grid_size),
                    'tiles': tiles(mt),
                })
            for tl in MINIMAL:
                if tl[0][2] >= grid.levels:
                    continue
                gs = grid.grid_sizes[tl[0][2]]
                if any(t[0] >= gs[0] or t[1] >= gs[1] for t in tl):
                    continue
                mt = mg.minimal_meta_tile(list(tl))
                out['cases'].append({
                    'grid': name, 'meta_size': list(meta_size), 'meta_buffer': buf,
                    'kind': 'minimal', 'input': [list(t) for t in tl],
                    'bbox': list(mt.bbox), 'size': list(mt.size), 'grid_size': list(mt.grid_size),
                    'tiles': tiles(mt),
                })
    print(json.dumps(out, indent=0))


main()
