#!/usr/bin/env python3
"""Prints source_cases.json: the upstream URLs the real MapProxy builds.

    /tmp/mpv/bin/python mapproxy/tests/gen_source_cases.py > mapproxy/tests/source_cases.json

- WMS GetMap URLs: mapproxy.request.wms.create_request (as WMSSourceConfiguration calls it,
  with the cache's format in params) and WMSClient._query_url, for WMS 1.1.1 and 1.3.0;
- tile URLs: mapproxy.client.tile.TileURLTemplate.substitute with each template variable.
tests/tiles_sources.rs builds the same with WmsSource/TileSource and compares.
"""
import json

import mapproxy.version
from mapproxy.client.tile import TileURLTemplate
from mapproxy.client.wms import WMSClient
from mapproxy.grid.tile_grid import tile_grid
from mapproxy.query import MapQuery
from mapproxy.request.wms import create_request
from mapproxy.srs import SRS

WMS = [
    # (url, req without url (in order), version, params format, query bbox, size, epsg, format)
    ('http://h/service', {'layers': 'dbg'}, '1.1.1', 'png',
     (-180.0, -90.0, 180.0, 90.0), (512, 256), 4326, 'png'),
    ('http://h/service?', {'layers': 'a,b', 'transparent': True}, '1.1.1', 'image/png',
     (-20037508.342789244, -20037508.342789244, 0.0, 0.0), (256, 256), 900913, 'png'),
    ('http://h/cgi?map=/x/y.map', {'layers': 'roads', 'styles': 'fancy', 'format': 'image/jpeg'}, '1.1.1',
     'png', (1e-05, 0.5, 1e16, 123456.789), (300, 200), 3857, 'jpeg'),
    ('http://h/service', {'layers': 'dbg'}, '1.3.0', 'png',
     (-180.0, -90.0, 0.0, 90.0), (256, 256), 4326, 'png'),
    ('http://h/service', {'layers': 'dbg', 'transparent': 'true', 'bgcolor': '0xffffff'}, '1.3.0', 'png',
     (-20037508.342789244, 0.0, 0.0, 20037508.342789244), (256, 256), 3857, 'png'),
    ('http://h/service', {'LAYERS': 'Upper', 'Foo': 'a b&c'}, '1.3.0', 'png',
     (5.5, 47.25, 16.0, 56.0), (640, 480), 4258, 'png'),
]

TEMPLATES = [
    'http://h/tiles/%(z)s/%(x)s/%(y)s.%(format)s',
    'http://h/tms/1.0.0/lyr/%(tms_path)s.%(format)s',
    'http://h/tc/%(tc_path)s.png',
    'http://h/q/%(quadkey)s.jpeg',
    'http://h/arcgis/%(arcgiscache_path)s.png',
    'http://h/wms?bbox=%(bbox)s&w=256',
]
TILES = [(0, 0, 0), (1, 0, 1), (3, 5, 3), (1234567, 87654321, 9), (13, 7, 4)]


def main():
    out = {'mapproxy_version': mapproxy.version.version,
           'generator': 'mapproxy/tests/gen_source_cases.py', 'wms': [], 'tiles': []}
    for url, req, version, pformat, bbox, size, epsg, fmt in WMS:
        req_data = dict(req)
        req_data['url'] = url
        request = create_request(req_data, {'format': pformat}, version=version)
        client = WMSClient(request)
        q = MapQuery(bbox, size, SRS(epsg), fmt)
        out['wms'].append({'url': url, 'req': [[k, str(v) if not isinstance(v, str) else v]
                                                for k, v in req.items()],
                           'version': version, 'format': pformat, 'bbox': list(bbox),
                           'size': list(size), 'srs': epsg, 'query_format': fmt,
                           'expected': client._query_url(q, fmt)})
    grids = {'sw': tile_grid(4326, bbox=(0, -15, 10, -5)),
             'nw': tile_grid(4326, bbox=(0, -15, 10, -5), origin='nw'),
             'merc': tile_grid(900913)}
    for t in TEMPLATES:
        for gname, grid in grids.items():
            for c in TILES:
                if '%(bbox)' not in t and gname != 'merc':
                    continue
                if '%(bbox)' in t and c[2] > 4:
                    continue
                for fmt in ('png', 'jpeg'):
                    out['tiles'].append({'template': t, 'grid': gname, 'tile': list(c), 'format': fmt,
                                         'expected': TileURLTemplate(t).substitute(c, fmt, grid)})
    print(json.dumps(out, indent=0))


main()
