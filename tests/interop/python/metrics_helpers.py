"""Scraping the admin listener's /metrics of a strait the suite started."""

import re
import urllib.request

import pytest

SERIES = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def admin_port(server):
    if server.external:
        pytest.skip("needs the admin port of a strait started by the suite")
    m = re.search(r"strait: admin listening on [\d.]+:(\d+)", server.log_text())
    assert m, "no admin address in the server log"
    return int(m.group(1))


def scrape(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(server)}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = SERIES.match(line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def total(series, name, **labels):
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for (n, lab), v in series.items() if n == name and all(w in lab for w in want))


def has(series, name, **labels):
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return any(n == name and all(w in lab for w in want) for (n, lab) in series)
