#!/usr/bin/env bash
# Checks the Helm chart (helm/strait) and the example app chart offline:
#   helm lint, helm template for every example values file, Kubernetes schema validation of
#   every rendered manifest (kubernetes-validate, strict), workload policy (non-root, probes,
#   grace period), and `strait check-config` on every rendered strait.yaml.
# Installs what it needs into .cache/: helm (go install from the Go module proxy) into
# .cache/bin, kubernetes-validate (PyPI) into .cache/venv. Builds target/debug/strait if missing.
# Prints PASS/FAIL per check and, last, `helm: N passed, M failed`; exits 1 on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=$ROOT/.cache
HELM=$CACHE/bin/helm
HELM_VERSION=v3.22.0
KV_SPEC='kubernetes-validate==1.37.*'
VENV=$CACHE/venv
PY=$VENV/bin/python
STRAIT=$ROOT/target/debug/strait
CHART=$ROOT/helm/strait
EXAMPLES=$ROOT/helm/examples
APP=$EXAMPLES/app-with-sidecar
OUT=$CACHE/helm-test
NS=default
here=$(cd "$(dirname "$0")" && pwd)

passed=0
failed=0
pass() { echo "PASS  $*"; passed=$((passed + 1)); }
fail() { echo "FAIL  $*"; failed=$((failed + 1)); }
finish() {
    echo "helm: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

# Runs a command; PASS/FAIL on its exit status, its output shown on failure.
check() {
    local name=$1
    shift
    local log
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then
        pass "$name"
    else
        fail "$name"
        sed 's/^/      /' "$log" | tail -40
    fi
    rm -f "$log"
}

# The opposite: the command must fail, with TEXT in its output.
check_fails() {
    local name=$1 text=$2
    shift 2
    local log
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then
        fail "$name (succeeded; expected an error)"
    elif grep -qF -- "$text" "$log"; then
        pass "$name"
    else
        fail "$name (error lacks '$text')"
        sed 's/^/      /' "$log" | tail -20
    fi
    rm -f "$log"
}

# Runs a Python checker that prints PASS/FAIL/SKIP lines itself; counts them.
run_checker() {
    local log rc
    log=$(mktemp)
    "$PY" "$@" >"$log" 2>&1
    rc=$?
    cat "$log"
    local p f
    p=$(grep -c '^PASS' "$log")
    f=$(grep -c '^FAIL' "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "checker $2 exited $rc"
    fi
    rm -f "$log"
}

# --- tools -----------------------------------------------------------------------------------
mkdir -p "$CACHE/bin" "$OUT"
if [ ! -x "$HELM" ]; then
    echo "installing helm $HELM_VERSION (go install) ..."
    t0=$(date +%s)
    if ! GOBIN=$CACHE/bin GOMODCACHE=$CACHE/go GOFLAGS=-mod=mod \
        nice go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$OUT/helm-install.log" 2>&1; then
        tail -20 "$OUT/helm-install.log"
        fail "install helm $HELM_VERSION"
        finish
    fi
    echo "helm installed in $(($(date +%s) - t0)) s"
fi
echo "using $("$HELM" version --short 2>/dev/null)"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV" || { fail "create $VENV"; finish; }
fi
if ! "$PY" -c 'import kubernetes_validate, sys; sys.exit(not kubernetes_validate.__version__.startswith("1.37."))' 2>/dev/null; then
    echo "installing $KV_SPEC into $VENV ..."
    if ! nice "$PY" -m pip install -q "$KV_SPEC" >"$OUT/pip.log" 2>&1; then
        tail -20 "$OUT/pip.log"
        fail "pip install $KV_SPEC"
        finish
    fi
fi
echo "using kubernetes-validate $("$PY" -c 'import kubernetes_validate; print(kubernetes_validate.__version__)')"

if [ ! -x "$STRAIT" ]; then
    echo "building target/debug/strait ..."
    (cd "$ROOT" && nice cargo build --bin strait) >"$OUT/cargo.log" 2>&1 || {
        tail -20 "$OUT/cargo.log"
        fail "cargo build"
        finish
    }
fi

# --- lint --------------------------------------------------------------------------------------
check "helm lint --strict helm/strait" "$HELM" lint --strict "$CHART"
for f in values-embedded.yaml values-kafka.yaml values-migration.yaml; do
    check "helm lint --strict helm/strait -f examples/$f" "$HELM" lint --strict "$CHART" -f "$EXAMPLES/$f"
done
check "helm dependency build examples/app-with-sidecar (file:// dependency, offline)" \
    "$HELM" dependency build "$APP"
check "helm lint --strict examples/app-with-sidecar -f values-sidecar.yaml" \
    "$HELM" lint --strict "$APP" -f "$EXAMPLES/values-sidecar.yaml"

# --- render, validate, check-config --------------------------------------------------------------
# case chart values-file expect-kinds forbid-kinds check-config-flags... ; "-" for none
render_case() {
    local case=$1 chart=$2 values=$3 expect=$4 forbid=$5
    shift 5
    local out=$OUT/$case.yaml
    local args=(template strait "$chart" --namespace "$NS")
    [ "$values" != - ] && args+=(-f "$values")
    if "$HELM" "${args[@]}" "${EXTRA_SET[@]}" >"$out" 2>"$OUT/$case.err"; then
        pass "$case: helm template"
    else
        fail "$case: helm template"
        sed 's/^/      /' "$OUT/$case.err" | tail -20
        return
    fi
    run_checker "$here/validate.py" "$out" "$case" \
        --expect-kinds "$([ "$expect" = - ] || echo "$expect")" \
        --forbid-kinds "$([ "$forbid" = - ] || echo "$forbid")" "${VALIDATE_ARGS[@]}"
    run_checker "$here/check_config.py" "$out" "$case" "$STRAIT" "$OUT/$case.config" "$@"
}

EXTRA_SET=()
VALIDATE_ARGS=()
render_case defaults "$CHART" - \
    StatefulSet,Service,ConfigMap,ServiceAccount Deployment,HorizontalPodAutoscaler \
    --advertised 'strait-0\.strait-headless\.default\.svc\.cluster\.local:9092'
render_case embedded "$CHART" "$EXAMPLES/values-embedded.yaml" \
    StatefulSet,Service,ConfigMap,ServiceMonitor,PodDisruptionBudget Deployment,HorizontalPodAutoscaler \
    --advertised 'strait-0\.strait-headless\.default\.svc\.cluster\.local:9092'
render_case kafka "$CHART" "$EXAMPLES/values-kafka.yaml" \
    Deployment,Service,ConfigMap,HorizontalPodAutoscaler,PodDisruptionBudget StatefulSet \
    --advertised '10\.1\.2\.3:9092' \
    --secret-env STRAIT_BACKEND__KAFKA__SASL__USERNAME=strait-kafka-sasl/username \
    --secret-env STRAIT_BACKEND__KAFKA__SASL__PASSWORD=strait-kafka-sasl/password
# The sidecar forms: native (the default; Kubernetes 1.29 is the first whose schema has an init
# container's restartPolicy) and classic (an ordinary container, for older clusters).
VALIDATE_ARGS=(--sidecar native --k8s-versions 1.29.0,1.37.0)
render_case sidecar "$APP" "$EXAMPLES/values-sidecar.yaml" \
    Deployment,ConfigMap StatefulSet,Service,HorizontalPodAutoscaler \
    --advertised '127\.0\.0\.1:9092'
VALIDATE_ARGS=(--sidecar classic --k8s-versions 1.25.0,1.37.0)
EXTRA_SET=(-f "$EXAMPLES/values-sidecar-classic.yaml")
render_case sidecar-classic "$APP" "$EXAMPLES/values-sidecar.yaml" \
    Deployment,ConfigMap StatefulSet,Service,HorizontalPodAutoscaler \
    --advertised '127\.0\.0\.1:9092'
EXTRA_SET=()
# The validation tells the forms apart: a native sidecar is not a valid pod before 1.28.
check_fails "the native sidecar is refused by the Kubernetes 1.27 schema (restartPolicy on a container)" \
    "restartPolicy" "$PY" "$here/validate.py" "$OUT/sidecar.yaml" sidecar-on-1.27 --k8s-versions 1.27.0
check_fails "refuses an unknown sidecar.form" "strait.sidecar.form must be native or classic" \
    "$HELM" template app "$APP" -f "$EXAMPLES/values-sidecar.yaml" --set strait.sidecar.form=both
# Charts written before the native form include "strait.sidecar" under containers: that is
# still the classic container, whatever sidecar.form says (rendered here with the default, native).
rm -rf "$OUT/app-old-include" && cp -r "$APP" "$OUT/app-old-include"
sed -i -e 's/include "strait.sidecarInitContainers" \./""/' -e 's/"strait.sidecarContainers"/"strait.sidecar"/' \
    "$OUT/app-old-include/templates/deployment.yaml"
VALIDATE_ARGS=(--sidecar classic)
render_case sidecar-old-include "$OUT/app-old-include" "$EXAMPLES/values-sidecar.yaml" \
    Deployment,ConfigMap StatefulSet,Service,HorizontalPodAutoscaler \
    --advertised '127\.0\.0\.1:9092'
VALIDATE_ARGS=(--sidecar native)
# The sidecar in front of MSK with IAM: AWS keys from a Secret, TLS with a client certificate.
EXTRA_SET=(--set strait.config.backend.type=kafka --set 'strait.config.backend.kafka.bootstrap={b-1.msk:9098}'
    --set strait.sasl.enabled=true --set strait.sasl.mechanism=AWS_MSK_IAM --set strait.sasl.existingSecret=msk-iam
    --set strait.backendTls.enabled=true --set strait.backendTls.existingSecret=msk-tls
    --set strait.backendTls.clientAuth=true)
render_case sidecar-msk-iam "$APP" "$EXAMPLES/values-sidecar.yaml" \
    Deployment,ConfigMap StatefulSet,Service,HorizontalPodAutoscaler \
    --advertised '127\.0\.0\.1:9092' \
    --secret-env AWS_ACCESS_KEY_ID=msk-iam/AWS_ACCESS_KEY_ID \
    --secret-env AWS_SECRET_ACCESS_KEY=msk-iam/AWS_SECRET_ACCESS_KEY \
    --env STRAIT_BACKEND__KAFKA__TLS__CA=/etc/strait/kafka-tls/ca.crt \
    --env STRAIT_BACKEND__KAFKA__TLS__CERT=/etc/strait/kafka-tls/tls.crt
# Sidecars on the Kinesis backend sharing their state in DynamoDB: other pods' Kafka clients are
# sent to each sidecar (FindCoordinator names the replica holding a group), so Kafka is on the pod IP.
EXTRA_SET=(--set strait.config.backend.type=kinesis --set strait.config.backend.kinesis.region=eu-west-1
    --set strait.config.backend.kinesis.state.type=dynamodb --set strait.config.backend.kinesis.state.table=strait-state)
render_case sidecar-kinesis-shared "$APP" "$EXAMPLES/values-sidecar.yaml" \
    Deployment,ConfigMap StatefulSet,Service,HorizontalPodAutoscaler \
    --advertised '10\.1\.2\.3:9092'
check "sidecar-kinesis-shared: Kafka listens on the pod IP, Kinesis stays on loopback" \
    bash -c "grep -q 'listen: 0.0.0.0:9092' '$OUT/sidecar-kinesis-shared.yaml' \
      && grep -q 'listen: 127.0.0.1:4567' '$OUT/sidecar-kinesis-shared.yaml'"
VALIDATE_ARGS=()
# A client certificate from a kubernetes.io/tls Secret with the image's CA bundle (caKey "").
EXTRA_SET=(--set backendTls.existingSecret=strait-client-cert --set backendTls.clientAuth=true
    --set backendTls.caKey=)
render_case kafka-client-cert "$CHART" "$EXAMPLES/values-kafka.yaml" \
    Deployment,Service,ConfigMap StatefulSet --advertised '10\.1\.2\.3:9092' \
    --env STRAIT_BACKEND__KAFKA__TLS__CA=/etc/ssl/certs/ca-certificates.crt \
    --env STRAIT_BACKEND__KAFKA__TLS__KEY=/etc/strait/kafka-tls/tls.key
# MSK IAM through IRSA: no Secret, the role on the ServiceAccount; the EKS webhook's variables.
EXTRA_SET=(--set sasl.mechanism=AWS_MSK_IAM --set sasl.existingSecret=
    --set 'serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::123456789012:role/strait')
render_case kafka-msk-irsa "$CHART" "$EXAMPLES/values-kafka.yaml" \
    Deployment,Service,ConfigMap StatefulSet --advertised '10\.1\.2\.3:9092'
check "kafka-msk-irsa: the role is on the ServiceAccount and no AWS key comes from a Secret" \
    bash -c "grep -q 'eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/strait' '$OUT/kafka-msk-irsa.yaml' \
      && ! grep -q AWS_ACCESS_KEY_ID '$OUT/kafka-msk-irsa.yaml'"
# One deployment's part of a shared cluster: topic_prefix with its own metadata topic.
EXTRA_SET=(--set config.backend.kafka.topic_prefix=team-a.
    --set config.backend.kafka.metadata_topic=team-a.__strait_meta --set sasl.enabled=false)
render_case kafka-topic-prefix "$CHART" "$EXAMPLES/values-kafka.yaml" \
    Deployment,Service,ConfigMap StatefulSet --advertised '10\.1\.2\.3:9092'
EXTRA_SET=()
# The HPA is for deployment mode only, whatever autoscaling.enabled says.
EXTRA_SET=(--set autoscaling.enabled=true --set podDisruptionBudget.enabled=true)
render_case statefulset-ignores-hpa "$CHART" - StatefulSet,PodDisruptionBudget HorizontalPodAutoscaler \
    --advertised 'strait-0\.strait-headless\.default\.svc\.cluster\.local:9092'
# Deployment mode on the embedded backend with a TLS Secret and every option on.
EXTRA_SET=(--set mode=deployment --set tls.enabled=true --set tls.secretName=strait-tls
    --set serviceMonitor.enabled=true --set autoscaling.enabled=true --set persistence.enabled=false)
render_case deployment-embedded-tls "$CHART" - \
    Deployment,HorizontalPodAutoscaler,ServiceMonitor StatefulSet --advertised '10\.1\.2\.3:9092'
# The Grafana dashboard and the alert rules, with the workload and in sidecar mode (alone).
EXTRA_SET=(--set dashboard.enabled=true --set prometheusRule.enabled=true)
render_case monitoring "$CHART" - StatefulSet,ConfigMap,PrometheusRule Deployment \
    --advertised 'strait-0\.strait-headless\.default\.svc\.cluster\.local:9092'
run_checker "$here/monitoring.py" "$OUT/monitoring.yaml" monitoring
"$HELM" template strait "$CHART" --set mode=sidecar "${EXTRA_SET[@]}" >"$OUT/monitoring-sidecar.yaml" 2>&1
run_checker "$here/validate.py" "$OUT/monitoring-sidecar.yaml" monitoring-sidecar \
    --expect-kinds ConfigMap,PrometheusRule --forbid-kinds StatefulSet,Deployment,Service
run_checker "$here/monitoring.py" "$OUT/monitoring-sidecar.yaml" monitoring-sidecar
EXTRA_SET=()

# --- what the chart must refuse -------------------------------------------------------------------
check_fails "refuses sasl.enabled on the embedded backend" "only with config.backend.type: kafka" \
    "$HELM" template strait "$CHART" --set sasl.enabled=true --set sasl.existingSecret=s
check_fails "refuses PLAIN/SCRAM without a Secret" "needs sasl.existingSecret" \
    "$HELM" template strait "$CHART" -f "$EXAMPLES/values-kafka.yaml" --set sasl.existingSecret=
check_fails "refuses an unknown SASL mechanism" "sasl.mechanism must be" \
    "$HELM" template strait "$CHART" -f "$EXAMPLES/values-kafka.yaml" --set sasl.mechanism=GSSAPI
check_fails "refuses AWS_MSK_IAM without backend TLS" "needs backendTls.enabled" \
    "$HELM" template strait "$CHART" -f "$EXAMPLES/values-kafka.yaml" --set sasl.mechanism=AWS_MSK_IAM \
    --set backendTls.enabled=false
check_fails "refuses backendTls.clientAuth without a Secret" "needs backendTls.existingSecret" \
    "$HELM" template strait "$CHART" -f "$EXAMPLES/values-kafka.yaml" --set backendTls.clientAuth=true
check_fails "refuses sidecar SASL on the embedded backend" "strait logs in to a Kafka cluster only" \
    "$HELM" template app "$APP" -f "$EXAMPLES/values-sidecar.yaml" --set strait.sasl.enabled=true \
    --set strait.sasl.existingSecret=s
check_fails "refuses a loopback kinesis.listen in a cluster" "must listen on 0.0.0.0" \
    "$HELM" template strait "$CHART" --set config.kinesis.listen=127.0.0.1:4567
check_fails "refuses tls.enabled without tls.secretName" "tls.secretName" \
    "$HELM" template strait "$CHART" --set tls.enabled=true
check_fails "refuses kafka.advertise=podDNS in deployment mode" "podDNS needs mode: statefulset" \
    "$HELM" template strait "$CHART" --set mode=deployment --set kafka.advertise=podDNS

finish
