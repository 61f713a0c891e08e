"""Runs `strait check-config` on the strait.yaml of every rendered strait ConfigMap, with the
STRAIT_* environment the chart gives the strait container (Kubernetes' $(VAR) references and
downward-API fields replaced by sample values), and checks the result.

    check_config.py MANIFESTS CASE STRAIT_BIN WORKDIR [--expect-reject TEXT]
                    [--advertised REGEX]

--expect-reject: strait must reject the file with TEXT in its message (a documented,
  not-yet-implemented setting); the file is then checked again with that one setting made
  valid (STRAIT_BACKEND__TYPE=embedded), which must pass.
--advertised: the effective kafka.advertised_address must match REGEX.
--secret-env NAME=SECRET/KEY (repeatable): the strait container takes NAME from that Secret key.
--env NAME=VALUE (repeatable): the strait container sets NAME to VALUE.
Secret references get sample values, so check-config sees a complete login.
Prints PASS/FAIL lines; exits 1 if any failed.
"""
import argparse
import os
import re
import subprocess
import sys

import yaml

SAMPLE_FIELDS = {
    "metadata.name": "strait-0",
    "metadata.namespace": "default",
    "status.podIP": "10.1.2.3",
    "spec.nodeName": "node-1",
}


def container_env(c):
    env = {}
    for e in c.get("env") or []:
        if "value" in e:
            v = str(e["value"])
        elif "fieldRef" in (e.get("valueFrom") or {}):
            v = SAMPLE_FIELDS.get(e["valueFrom"]["fieldRef"]["fieldPath"], "x")
        elif "secretKeyRef" in (e.get("valueFrom") or {}):
            ref = e["valueFrom"]["secretKeyRef"]
            v = f"sample-{ref['name']}-{ref['key']}"
        else:
            continue
        # Kubernetes expands $(NAME) from variables defined earlier in the list.
        v = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), v)
        env[e["name"]] = v
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifests")
    ap.add_argument("case")
    ap.add_argument("strait")
    ap.add_argument("workdir")
    ap.add_argument("--expect-reject", default="")
    ap.add_argument("--advertised", default="")
    ap.add_argument("--secret-env", action="append", default=[])
    ap.add_argument("--env", action="append", default=[])
    a = ap.parse_args()
    with open(a.manifests) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    os.makedirs(a.workdir, exist_ok=True)

    configs = {d["metadata"]["name"]: d["data"]["strait.yaml"] for d in docs
               if d.get("kind") == "ConfigMap" and "strait.yaml" in (d.get("data") or {})}
    failed = 0

    def report(ok, what, detail=""):
        nonlocal failed
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {a.case}: {what}" + (f": {detail}" if detail and not ok else ""))

    if not configs:
        report(False, "a ConfigMap with strait.yaml is rendered")
    # Which container env goes with which ConfigMap.
    envs = {}
    for d in docs:
        if d.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        pod = d["spec"]["template"]["spec"]
        vols = {v["name"]: (v.get("configMap") or {}).get("name") for v in pod.get("volumes", [])}
        for c in pod["containers"] + pod.get("initContainers", []):
            for m in c.get("volumeMounts", []):
                if m["mountPath"] == "/etc/strait/strait.yaml":
                    envs[vols.get(m["name"])] = container_env(c)

    for name, text in configs.items():
        path = os.path.join(a.workdir, f"{name}.strait.yaml")
        with open(path, "w") as f:
            f.write(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRAIT_")}
        strait_env = {k: v for k, v in envs.get(name, {}).items() if k.startswith(("STRAIT_", "AWS_"))}
        env.update(strait_env)
        r = subprocess.run([a.strait, "check-config", "--config", path], env=env,
                           capture_output=True, text=True)
        out = r.stdout + r.stderr
        what = f"check-config {name}/strait.yaml (env: {','.join(sorted(strait_env)) or 'none'})"
        if a.expect_reject:
            report(r.returncode != 0 and a.expect_reject in out,
                   f"{what} is rejected with {a.expect_reject!r} (not implemented in strait yet)",
                   out.strip()[-400:])
            env["STRAIT_BACKEND__TYPE"] = "embedded"
            r = subprocess.run([a.strait, "check-config", "--config", path], env=env,
                               capture_output=True, text=True)
            out = r.stdout + r.stderr
            report(r.returncode == 0, f"{what} passes apart from that (with STRAIT_BACKEND__TYPE=embedded)",
                   out.strip()[-400:])
        else:
            report(r.returncode == 0, what, out.strip()[-400:])
        for want in a.secret_env:
            var, ref = want.split("=", 1)
            secret, key = ref.split("/", 1)
            got = envs.get(name, {}).get(var)
            report(got == f"sample-{secret}-{key}", f"{name}: {var} comes from Secret {secret}, key {key}",
                   f"got {got!r}")
        for want in a.env:
            var, value = want.split("=", 1)
            got = envs.get(name, {}).get(var)
            report(got == value, f"{name}: {var}={value}", f"got {got!r}")
        if a.advertised and r.returncode == 0:
            # check-config prints the effective configuration as YAML on standard output.
            got = ((yaml.safe_load(r.stdout) or {}).get("kafka") or {}).get("advertised_address")
            report(bool(got and re.fullmatch(a.advertised, got)),
                   f"{name} advertises Kafka address {got}", f"expected /{a.advertised}/")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
