"""/metrics of the Kafka-backend strait after every suite above ran through it: both protocols'
requests and records are counted, and the backend series show strait's own calls to the cluster
(the Kinesis side's log calls and its requests to brokers). STRAIT_ADMIN is host:port of the
admin listener (tests/interop/lib/strait.sh exports it).
"""

import os
import re
import urllib.request

from harness import check, finish, require

SERIES = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape():
    with urllib.request.urlopen(f"http://{os.environ['STRAIT_ADMIN']}/metrics", timeout=10) as r:
        text = r.read().decode()
    return [(m.group(1), m.group(2) or "", float(m.group(3))) for m in map(SERIES.match, text.splitlines()) if m]


def total(series, name, **labels):
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for n, lab, v in series if n == name and all(w in lab for w in want))


def both_protocols_counted():
    s = scrape()
    for proto in ("kinesis", "kafka"):
        require(total(s, "strait_requests_total", protocol=proto) > 0, f"no {proto} requests counted")
        require(any(n == "strait_connections" and f'protocol="{proto}"' in lab for n, lab, _ in s),
                f"no {proto} connection gauge")
    for op in ("PutRecords", "GetRecords", "SubscribeToShard"):
        require(total(s, "strait_requests_total", protocol="kinesis", operation=op) > 0, f"no {op} counted")
    for api in ("Produce", "Fetch", "Metadata"):
        require(total(s, "strait_requests_total", protocol="kafka", operation=api) > 0, f"no {api} counted")
    require(total(s, "strait_records_in_total", protocol="kinesis") > 0, "no Kinesis records in")
    require(total(s, "strait_records_out_total", protocol="kinesis") > 0, "no Kinesis records out")


def backend_calls_counted():
    s = scrape()
    for op in ("append", "read", "offsets"):
        n = total(s, "strait_backend_request_duration_seconds_count", backend="kafka", operation=op)
        require(n > 0, f"no backend {op} timed")
    for api in ("Produce", "Fetch", "ListOffsets", "CreateTopics"):
        n = total(s, "strait_kafka_broker_request_duration_seconds_count", api=api)
        require(n > 0, f"no {api} to the brokers timed")
    # The broker restart in kinesis_checks.py (run before this in run.sh) made some fail.
    require(total(s, "strait_kafka_broker_request_errors_total") > 0, "no broker request failure counted")


check("/metrics counts both protocols after the suites", both_protocols_counted)
check("/metrics times strait's own calls to the Kafka cluster", backend_calls_counted)
finish()
