"""Checks for one `helm template` output (a multi-document YAML file).

    validate.py MANIFESTS CASE [--expect-kinds Kind,Kind] [--forbid-kinds Kind,Kind]
                [--k8s-versions 1.29.0,1.37.0] [--sidecar native|classic]

1. Every document is validated with kubernetes-validate (the schemas it ships; Kubernetes
   1.37 unless --k8s-versions names others, strict: unknown fields are errors). Custom resources (API groups that are not built
   into Kubernetes, e.g. monitoring.coreos.com ServiceMonitor) have no schema there: they are
   reported as SKIP and only checked for apiVersion/kind/metadata.name/spec.
2. Workload policy for every container named strait: non-root uid 65532, read-only root
   filesystem, no privilege escalation, all capabilities dropped, /healthz liveness and
   /readyz readiness probes on the admin port, and a terminationGracePeriodSeconds above
   the configuration's shutdown_grace_secs. The strait container is looked for among the
   pod's containers and init containers; --sidecar native wants it as Kubernetes' native
   sidecar (an init container with restartPolicy Always whose startup probe asks /readyz, so
   the app's containers start once strait serves), --sidecar classic among the containers.

Prints one PASS/FAIL/SKIP line per check; exits 1 if any failed.
"""
import argparse
import sys

import yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

K8S_VERSIONS = "1.37.0"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def builtin_group(api_version):
    if "/" not in api_version:
        return True  # core group (v1)
    group = api_version.split("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifests")
    ap.add_argument("case")
    ap.add_argument("--expect-kinds", default="")
    ap.add_argument("--forbid-kinds", default="")
    ap.add_argument("--k8s-versions", default=K8S_VERSIONS)
    ap.add_argument("--sidecar", choices=["native", "classic"])
    a = ap.parse_args()

    with open(a.manifests) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    failed = 0

    def report(ok, what, detail=""):
        nonlocal failed
        if ok is None:
            print(f"SKIP  {a.case}: {what}{': ' + detail if detail else ''}")
            return
        if not ok:
            failed += 1
        print(f"{'PASS' if ok else 'FAIL'}  {a.case}: {what}{': ' + detail if detail and not ok else ''}")

    if not docs:
        report(False, "rendered manifests", "no documents")
    kinds = [d.get("kind") for d in docs]

    # 1. schemas
    for d, version in ((d, v) for d in docs for v in a.k8s_versions.split(",")):
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(d, version, strict=True)
            report(True, f"schema {name} (k8s {version}, strict)")
        except ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            report(False, f"schema {name} (k8s {version})", f"{path}: {e.message}")
        except SchemaNotFoundError:
            if version != a.k8s_versions.split(",")[0]:
                continue
            if builtin_group(d.get("apiVersion", "")):
                report(False, f"schema {name}", f"no schema for built-in {d.get('apiVersion')}")
            else:
                shape = all([d.get("apiVersion"), d.get("kind"),
                             d.get("metadata", {}).get("name"), isinstance(d.get("spec"), dict)])
                if not shape:
                    report(False, f"shape {name}", "apiVersion/kind/metadata.name/spec missing")
                report(None, f"schema {name}",
                       f"custom resource {d.get('apiVersion')}: kubernetes-validate has no CRD schemas")

    for k in filter(None, a.expect_kinds.split(",")):
        report(k in kinds, f"renders a {k}", f"kinds are {kinds}")
    for k in filter(None, a.forbid_kinds.split(",")):
        report(k not in kinds, f"renders no {k}", f"kinds are {kinds}")

    # 2. policy for the strait containers
    configs = {}
    for d in docs:
        if d.get("kind") == "ConfigMap" and "strait.yaml" in (d.get("data") or {}):
            configs[d["metadata"]["name"]] = yaml.safe_load(d["data"]["strait.yaml"])
    for d in docs:
        if d.get("kind") not in WORKLOADS:
            continue
        pod = d["spec"]["template"]["spec"]
        wname = f"{d['kind']}/{d['metadata']['name']}"
        stratis = [(c, False) for c in pod.get("containers", []) if c.get("name") == "strait"]
        stratis += [(c, True) for c in pod.get("initContainers", []) if c.get("name") == "strait"]
        if a.sidecar:
            native = a.sidecar == "native"
            report(len(stratis) == 1 and stratis[0][1] == native,
                   f"{wname} runs strait {'as an init container' if native else 'among its containers'}",
                   f"found {[('init' if i else 'container') for _, i in stratis]}")
        for c, in_init in stratis:
            what = f"{wname} strait {'init container' if in_init else 'container'}"
            if in_init:
                report(c.get("restartPolicy") == "Always",
                       f"{what} has restartPolicy Always (a native sidecar)", f"{c.get('restartPolicy')}")
            else:
                report("restartPolicy" not in c, f"{what} has no restartPolicy of its own")
            sc = c.get("securityContext") or {}
            psc = pod.get("securityContext") or {}
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            report(uid == 65532 and sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True,
                   f"{what} runs as non-root uid 65532", f"runAsUser={uid}")
            report(sc.get("readOnlyRootFilesystem") is True, f"{what} readOnlyRootFilesystem")
            report(sc.get("allowPrivilegeEscalation") is False, f"{what} allowPrivilegeEscalation false")
            report((sc.get("capabilities") or {}).get("drop") == ["ALL"], f"{what} drops ALL capabilities")
            cfg_vol = next((m for m in c.get("volumeMounts", []) if m["mountPath"] == "/etc/strait/strait.yaml"), None)
            cm_name = None
            if cfg_vol:
                vol = next((v for v in pod.get("volumes", []) if v["name"] == cfg_vol["name"]), {})
                cm_name = (vol.get("configMap") or {}).get("name")
            cfg = configs.get(cm_name)
            report(cfg is not None, f"{what} mounts its strait.yaml ConfigMap", f"configMap {cm_name!r} not rendered")
            if cfg is None:
                continue
            admin_port = int(str(cfg["admin"]["listen"]).rsplit(":", 1)[1])
            named = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            probes = [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]
            if in_init:
                # The app's containers start once this passes: strait must be serving by then.
                probes.append(("startupProbe", "/readyz"))
            for probe, path in probes:
                hg = (c.get(probe) or {}).get("httpGet") or {}
                port = hg.get("port")
                port = named.get(port, port)
                report(hg.get("path") == path and port == admin_port,
                       f"{what} {probe} GET {path} on the admin port {admin_port}", f"{hg}")
            grace = pod.get("terminationGracePeriodSeconds", 30)
            sgs = cfg.get("shutdown_grace_secs", 30)
            report(grace > sgs, f"{what} terminationGracePeriodSeconds {grace} > shutdown_grace_secs {sgs}")
            report(c.get("args", [])[:3] == ["serve", "--config", "/etc/strait/strait.yaml"],
                   f"{what} runs serve --config /etc/strait/strait.yaml", f"{c.get('args')}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
