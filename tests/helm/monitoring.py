"""Checks the chart's dashboard ConfigMap and PrometheusRule in one `helm template` output:

    monitoring.py MANIFESTS CASE

the dashboard ConfigMap carries Grafana's discovery label and helm/strait/dashboards/strait.json
as it is (valid JSON, every panel with a query); the PrometheusRule has the alerts the chart
promises, each with an expression, and its thresholds came from values.yaml. Which metrics those
queries name is checked against a running strait (tests/helm/named_metrics.py). PASS/FAIL lines.
"""
import json
import os
import sys

import yaml

ALERTS = {
    "StraitConsumerGroupLagGrowing", "StraitEfoConsumerBehind", "StraitErrorRate", "StraitStorageErrors",
    "StraitDiskNearlyFull", "StraitNotReady", "StraitBackendErrors", "StraitCertificateExpiring",
}
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    manifests, case = sys.argv[1], sys.argv[2]
    with open(manifests) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    failed = 0

    def report(ok, what, detail=""):
        nonlocal failed
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {case}: {what}{': ' + detail if detail and not ok else ''}")

    dash = [d for d in docs if d["kind"] == "ConfigMap" and "strait.json" in (d.get("data") or {})]
    report(len(dash) == 1, "one dashboard ConfigMap", f"{len(dash)}")
    for d in dash:
        report(d["metadata"]["labels"].get("grafana_dashboard") == "1", "dashboard has the grafana_dashboard label")
        with open(os.path.join(ROOT, "helm", "strait", "dashboards", "strait.json")) as f:
            shipped = json.load(f)
        try:
            got = json.loads(d["data"]["strait.json"])
        except ValueError as e:
            report(False, "dashboard is JSON", str(e))
            continue
        report(got == shipped, "dashboard is dashboards/strait.json as it is")
        empty = [p["title"] for p in got["panels"] if not all(t.get("expr") for t in p.get("targets", [None]))]
        report(not empty, f"all {len(got['panels'])} panels have queries", f"{empty}")
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    report(len(rules) == 1, "one PrometheusRule", f"{len(rules)}")
    for r in rules:
        alerts = {a["alert"]: a for g in r["spec"]["groups"] for a in g["rules"]}
        report(set(alerts) == ALERTS, "the promised alerts", f"{sorted(set(alerts) ^ ALERTS)}")
        report(all(a.get("expr") for a in alerts.values()), "every alert has an expression")
        lag = alerts.get("StraitConsumerGroupLagGrowing", {}).get("expr", "")
        report("> 1000" in lag, "thresholds come from values.yaml (groupLagRecords 1000)", lag)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
