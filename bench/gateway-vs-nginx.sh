#!/usr/bin/env bash
# Compares the gateway with nginx proxying the same upstream on this machine,
# and with the upstream called directly: `bazaar bench gateway` (the
# bazaar-bench program, on the bazaar binary of the same release build).
#
# Installs Debian's nginx (nginx-light, or nginx where that package is gone)
# when no nginx is found, then runs the benchmark from a release build.
# Arguments go to the benchmark, e.g.
#     bench/gateway-vs-nginx.sh --duration 10 --json
#
# On a machine with systemd, installing the package also starts nginx's
# default site on port 80; the benchmark does not use it
# (`systemctl disable --now nginx` stops it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

have_nginx() {
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
}

if ! have_nginx; then
    echo "nginx is not installed; installing Debian's package…" >&2
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    install_nginx() {
        "${sudo[@]}" apt-get install -y --no-install-recommends nginx-light ||
            "${sudo[@]}" apt-get install -y --no-install-recommends nginx
    }
    # The package lists may be missing or stale; update them only if needed.
    if ! install_nginx; then
        "${sudo[@]}" apt-get update
        install_nginx
    fi
    have_nginx || {
        echo "error: nginx is still not found after installing it" >&2
        exit 1
    }
fi

cargo build --release -p bazaar -p bazaar-bench
exec cargo run --release -p bazaar-bench -- gateway "$@"
