"""The metrics the chart's Grafana dashboard (helm/strait/dashboards/strait.json) and alert rules
(helm/strait/templates/prometheusrule.yaml) name, and where each must exist once a workload ran:
a suite scrapes a running strait and fails on any name missing there, so the dashboard and the
alerts cannot drift from what strait exports.

    named()          every strait_* name in the two files (histograms by their _bucket series)
    expected(where)  those a strait of that kind exports after a workload:
                     "embedded" (also where no other kind is named), "tls" (a Kinesis listener
                     with a certificate), "kafka" (the Kafka backend, after a broker restart)
"""

import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FILES = [
    os.path.join(ROOT, "helm", "strait", "dashboards", "strait.json"),
    os.path.join(ROOT, "helm", "strait", "templates", "prometheusrule.yaml"),
]

# Series only some stratis have: strait's own requests to Kafka brokers (Kafka backend; failures
# after the suite's broker restart), the expiry of a certificate strait presents.
WHERE = {
    "strait_kafka_broker_request_duration_seconds_bucket": "kafka",
    "strait_kafka_broker_request_errors_total": "kafka",
    "strait_tls_certificate_expiry_timestamp_seconds": "tls",
}


def named():
    names = set()
    for path in FILES:
        with open(path) as f:
            names.update(re.findall(r"\bstrait_[a-z_]+", f.read()))
    return sorted(names)


def expected(where):
    return [n for n in named() if WHERE.get(n, "embedded") == where]
