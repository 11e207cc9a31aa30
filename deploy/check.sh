#!/usr/bin/env bash
# Checks of the deployment files that need no cluster and no Docker engine:
#   - the generated Kubernetes manifests (and engines/redis.yaml) against the
#     Kubernetes schemas (kubernetes-validate bundles them: no network), for
#     the oldest supported and the newest bundled Kubernetes;
#   - checkov on the manifests and the Dockerfile (skips with reasons in
#     .checkov.yaml);
#   - yamllint on every YAML file under deploy/ (.yamllint).
# That the committed files are what the registry generates is a Rust test:
# cargo test -p bazaar --lib deploy.
#
# The tools live in a venv, $HOME/.cache/bazaar/venv by default
# (BAZAAR_VENV), made from deploy/requirements.txt and reused until that
# file changes.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${BAZAAR_VENV:-$HOME/.cache/bazaar/venv}"
want="$(sha256sum deploy/requirements.txt | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "deploy/check.sh: installing the tools into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements.txt
  echo "$want" >"$venv/.requirements.sha256"
fi
bin="$venv/bin"

step() { printf '\n--- %s\n' "$*"; }

# Kubernetes resources only: not the kustomization, not the engines' Helm
# values or CloudNativePG's custom resource (no schema bundled for those).
manifests=()
for f in deploy/kubernetes/*.yaml deploy/kubernetes/engines/redis.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done

# The oldest Kubernetes the manifests are for (preStop sleep is on by default
# from 1.30) and the newest whose schemas the pinned tool bundles.
for version in 1.30.0 1.37.0; do
  step "kubernetes-validate --strict, Kubernetes $version"
  "$bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "${manifests[@]}"
  echo "${#manifests[@]} files valid"
done

step "checkov (Kubernetes manifests, Dockerfile)"
# No network: no guideline download, no version check.
BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
  "$bin/checkov" --config-file .checkov.yaml

step "yamllint"
"$bin/yamllint" --strict --config-file .yamllint deploy .yamllint .checkov.yaml
echo "clean"

step "deploy/check.sh passed"
