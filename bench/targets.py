#!/usr/bin/env python3
"""The targets of issues 3, 4 and 5, checked against a bench/run.sh results directory.

usage: targets.py RESULTS_DIR

Every ratio is taken between two configs measured in the same round of the same group, then
the median over rounds is reported (per-round values in brackets). "CPU" ratios use server CPU
µs per response (the steadiest figure on a shared machine); req/s ratios are the targets' own
wording. Prints a markdown table.
"""
import glob
import json
import os
import re
import statistics
import sys

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
OUT = sys.argv[1]


def parse_wrk(path):
    t = open(path).read()
    r = {"rps": None, "p99": None, "errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M)
    if m:
        r["p99"] = float(m.group(1)) * UNIT[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    if m:
        r["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    if m:
        r["errors"] += sum(int(x) for x in m.groups())
    return r


def load(group):
    """data[(round, cfg, ep)] = {rps, p99, errors, us (server CPU µs/response)}; mem[cfg] = [MiB]"""
    data, mem = {}, {}
    for w in glob.glob(os.path.join(OUT, group, "r*", "*", "*.wrk")):
        if ".try" in os.path.basename(w):
            continue
        cdir = os.path.dirname(w)
        rnd = os.path.basename(os.path.dirname(cdir))
        cfg = os.path.basename(cdir)
        ep = os.path.basename(w)[:-4]
        d = parse_wrk(w)
        try:
            cpu = json.load(open(w[:-4] + ".cpu.json"))
        except (OSError, ValueError):
            cpu = {}
        sp = cpu.get("server_pct")
        d["us"] = (sp / 100.0) / d["rps"] * 1e6 if sp and d["rps"] else None
        d["other"] = cpu.get("other_pct")
        data[(rnd, cfg, ep)] = d
    for m in glob.glob(os.path.join(OUT, group, "r*", "*", "mem.json")):
        cfg = os.path.basename(os.path.dirname(m))
        try:
            mem.setdefault(cfg, []).append(json.load(open(m))["rss_kib"] / 1024)
        except (OSError, ValueError, KeyError):
            pass
    return data, mem


def rounds(data):
    return sorted({k[0] for k in data}, key=lambda r: int(r[1:]))


def ratio(group, a, b, ep, key="rps", ep_b=None):
    """per-round a/b of `key` on endpoint ep (ep_b for b)."""
    data, _ = GROUPS[group]
    out = []
    for r in rounds(data):
        x, y = data.get((r, a, ep)), data.get((r, b, ep_b or ep))
        if x and y and x.get(key) and y.get(key):
            out.append(x[key] / y[key])
    return out


def fmt(xs, digits=2):
    if not xs:
        return "n/a", None
    m = statistics.median(xs)
    per = " / ".join(f"{x:.{digits}f}" for x in xs)
    return (f"{m:.{digits}f}x" + (f" ({per})" if len(xs) > 1 else "")), m


GROUPS = {g: load(g) for g in ("harness", "issue3", "issue5", "bcrypt", "static")
          if os.path.isdir(os.path.join(OUT, g))}
rows = []


def check(issue, what, group, a, b, ep, op, target, key="rps", ep_b=None, cpu=True):
    if group not in GROUPS:
        return
    text, m = fmt(ratio(group, a, b, ep, key, ep_b))
    if m is None:
        verdict = "not measured"
    elif op == ">=":
        verdict = "met" if m >= target else "**missed**"
    else:
        verdict = "met" if m <= target else "**missed**"
    # CPU per response: b's µs / a's µs, so that > 1 means a is cheaper (same sense as req/s)
    cpu_txt = "-"
    if cpu:
        cr = [1 / x for x in ratio(group, a, b, ep, "us", ep_b)]
        cpu_txt = fmt(cr)[0]
    rows.append(f"| {issue} | {what} | {op} {target:g} | {text} | {cpu_txt} | {verdict} |")


def check_rss(issue, group, cfg, limit_mib):
    if group not in GROUPS:
        return
    xs = GROUPS[group][1].get(cfg, [])
    if not xs:
        return
    m = max(xs)
    verdict = "met" if m < limit_mib else "**missed**"
    rows.append(f"| {issue} | RSS of `{cfg}` after its runs (max of rounds) | < {limit_mib} MiB | {m:.1f} MiB | - | {verdict} |")


# issue 3: text app direct / in a 100-entry urlmap vs hyper_min (GET / ; urlmap: GET /m50/hello)
for cfg, label in (("mps_text", "text app direct"), ("mps_urlmap100", "text app in a 100-entry urlmap")):
    check(3, f"{label}: req/s vs hyper_min", "issue3", cfg, "hyper_min", "root", ">=", 0.85)
    check(3, f"{label}: p99 vs hyper_min's p99", "issue3", cfg, "hyper_min", "root", "<=", 1.5, key="p99", cpu=False)
    check_rss(3, "issue3", cfg, 30)

# issue 4: the harness's composition (access log + urlmap + auth + hello app)
check(4, "`/api` (log+urlmap+auth {PLAIN}+app) vs hyper_min", "harness", "mapproxy_serve", "hyper_min", "api", ">=", 0.75)
check(4, "`/` (log+urlmap+app) vs hyper_min (for reference)", "harness", "mapproxy_serve", "hyper_min", "root", ">=", 0.75)
check(4, "`/api` vs nginx_w1, {PLAIN} password", "harness", "mapproxy_serve", "nginx_w1", "api", ">=", 1.0)
check(4, "`/api` vs Paste Deploy on waitress", "harness", "mapproxy_serve", "paste_waitress", "api", ">=", 10)
check(4, "`/api` apr1 htpasswd vs nginx_w1 apr1", "harness", "mapproxy_serve_apr1", "nginx_w1_apr1", "api", ">=", 5)
check(4, "`/api` bcrypt htpasswd vs nginx_w1 apr1", "harness", "mapproxy_serve_bcrypt", "nginx_w1_apr1", "api", ">=", 5)
check(4, "`/api` bcrypt htpasswd vs nginx_w1 bcrypt (same group)", "bcrypt", "mps_bcrypt", "nginx_w1_bcrypt", "api", ">=", 5)
check(4, "static 4 KiB vs nginx_w1", "harness", "mapproxy_serve", "nginx_w1", "s4k", ">=", 0.8)
check(4, "static 1 MiB vs nginx_w1", "harness", "mapproxy_serve", "nginx_w1", "s1m", ">=", 1.0)
check(4, "static 4 KiB, `max_cached_file_size = 1048576` vs nginx_w1 (same group)", "static", "mps_cached1m", "nginx_w1", "s4k", ">=", 0.8)
check(4, "static 1 MiB, `max_cached_file_size = 1048576` vs nginx_w1 (same group)", "static", "mps_cached1m", "nginx_w1", "s1m", ">=", 1.0)

# issue 5: access log to a FileHandler vs the same stack without the access-log filter
for ep, label in (("root", "`/`"), ("api", "`/api`"), ("s4k", "static 4 KiB")):
    check(5, f"{label} with access log vs without", "issue5", "mps_log", "mps_nolog", ep, ">=", 0.9)

print("| issue | what (same run, same round) | target | req/s ratio, median (per round) | CPU/response ratio (inverse; > 1 = cheaper) | verdict |")
print("|---|---|---|---|---|---|")
print("\n".join(rows))

# noise: other tenants' CPU during the kept runs
others = [d["other"] for g in GROUPS.values() for d in g[0].values() if d.get("other") is not None]
errs = [(g, k) for g, (data, _) in GROUPS.items() for k, d in data.items() if d["errors"]]
if others:
    print(f"\nOther tenants during the kept measured runs: median {statistics.median(others):.0f} %, "
          f"max {max(others):.0f} % of a core ({len(others)} runs).")
print("Non-2xx or socket errors: " + (", ".join(f"{g} {k}" for g, k in errs) if errs else "none") + ".")
