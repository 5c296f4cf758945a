#!/usr/bin/env python3
"""Generate formats.json: what Python's logging.Formatter renders for fixed records.

Run from this directory with Python 3 (the fixtures were made with CPython 3.11.7):

    python3 gen_formats.py > formats.json

tests/logging_format.rs renders the same records with mapproxy_serve::logging::format and
compares. The records are fixed here and in the test (logging_format.rs `records()`):
created 1700000000.123456 (2023-11-14 22:13:20 UTC), TZ=UTC.
"""
import json
import logging
import os
import sys
import time

os.environ["TZ"] = "UTC"
time.tzset()

RECORDS = {
    "info": dict(
        name="mapproxy.source.request", levelno=20, levelname="INFO",
        pathname="src/client/log.rs", filename="log.rs", module="log", lineno=42,
        funcName="log_request", thread=140000000001, threadName="MainThread",
        process=4242, processName="MainProcess",
        msg="GET http://example.org/wms 200 1.1 10",
    ),
    "warning": dict(
        name="mapproxy.config", levelno=30, levelname="WARNING",
        pathname="/srv/app/src/config/loader.rs", filename="loader.rs", module="loader",
        lineno=7, funcName="(unknown function)", thread=2, threadName="tokio-runtime-worker",
        process=1, processName="MainProcess",
        msg="h\u00e9llo w\u00f6rld \u2713 'quoted'",
    ),
}

FORMATS = [
    # Formats of the ini examples
    "%(asctime)s %(levelname)-5.5s [%(name)s:%(lineno)s][%(threadName)s] %(message)s",
    "%(asctime)s - %(levelname)s - %(name)s - %(message)s",
    "[%(asctime)s] %(message)s",
    "%(asctime)s - %(levelname)s - %(process)d:%(name)s:%(funcName)s - %(message)s",
    "%(message)s",
    "%(levelname)s:%(name)s:%(message)s",
    "%(asctime)s %(levelname)-5.5s [%(name)s] %(message)s",
    # strings: width, precision, alignment
    "%(levelname)-8s|", "%(levelname)8s|", "%(levelname).3s|", "%(levelname)-5.5s|",
    "%(name)20.10s|", "%(name)-30s|", "%(name)05s|", "%(message).10s|", "%(message)-50s|",
    "%(message)20.5s|", "%(message)r", "%(message)a", "%(name)r", "%(levelname)10r|",
    "%(pathname)s", "%(filename)s", "%(module)s", "%(funcName)s", "%(threadName)s",
    "%(processName)s",
    # integers
    "%(process)d", "%(process)08d", "%(process)-8d|", "%(process)+d", "%(process) d",
    "%(process)x", "%(process)#X", "%(process)o", "%(process)#o", "%(process).6d",
    "%(process)s", "%(process)r", "%(process)10s|", "%(process)f", "%(process)e",
    "%(thread)d", "%(thread)x", "%(levelno)s", "%(levelno)02d", "%(levelno)i %(levelno)u",
    "%(lineno)d", "%(lineno)-5d|", "%(lineno)5s|", "%(levelno)#08x",
    # floats
    "%(msecs)03d", "%(msecs)d", "%(msecs)s", "%(msecs)f", "%(msecs)03.0f", "%(msecs)5.1f|",
    "%(created)f", "%(created)d", "%(created)s", "%(created).2f", "%(created)e",
    "%(created)E", "%(created)g", "%(created)G", "%(created)10.3e|", "%(created)+.3f",
    "%(created)015.3f", "%(created).0f", "%(created)#.0f", "%(created)r", "%(created).12g",
    "%(created)-20.1f|",
    "%(relativeCreated)d", "%(relativeCreated)s", "%(relativeCreated).1f",
    "%(relativeCreated)g", "%(relativeCreated)#g", "%(relativeCreated).3g",
    "%(relativeCreated).10g", "%(relativeCreated)e", "%(relativeCreated)08.2f",
    # literal percent
    "%%(name)s %(name)s", "100%% %(message)s", "%(levelname)s%%",
    # asctime
    "%(asctime)s", "%(asctime).10s|", "%(asctime)30s|", "%(asctime)-25s|",
]

DATEFMTS = [
    "%Y-%m-%d %H:%M:%S", "%H:%M:%S", "%d/%b/%Y:%H:%M:%S %z", "%a, %d %b %Y %H:%M:%S",
    "%Y%m%dT%H%M%S", "%j %p %I %y %e", "%c", "%x %X", "%A %B %U %W %w %u", "%f literal",
    "%Z", "%D %R %T %F", "%-d.%-m.%Y %k:%M", "%G-W%V-%u", "%C %g %h %n%t|", "%%Y",
]


def render(rec, fmt, datefmt=None):
    r = logging.makeLogRecord(dict(RECORDS[rec], args=()))
    r.created = 1700000000.123456
    r.msecs = 123.0
    r.relativeCreated = 1234.5678
    return logging.Formatter(fmt, datefmt).format(r)


cases = []
for rec in RECORDS:
    for fmt in FORMATS:
        cases.append(dict(record=rec, format=fmt, datefmt=None, expected=render(rec, fmt)))
for datefmt in DATEFMTS:
    fmt = "%(asctime)s %(message)s"
    cases.append(dict(record="info", format=fmt, datefmt=datefmt,
                      expected=render("info", fmt, datefmt)))

json.dump(dict(python=sys.version.split()[0], cases=cases), sys.stdout, indent=1,
          ensure_ascii=False)
sys.stdout.write("\n")
