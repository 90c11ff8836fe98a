#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian 12 machine (run as root),
# and nothing when it is all there already, so a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool iproute2 iptables
          build-essential python3 pkg-config procps iputils-ping util-linux curl
          containerd runc umoci busybox-static nftables)
# kubectl for the lab API server interop test: Debian's package only when no
# kubectl is installed (another vendor's package may own /usr/bin/kubectl).
command -v kubectl >/dev/null || APT_PKGS+=(kubernetes-client)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  echo "deps: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm modules, only when the lockfile changed since the last install.
# Not `npm ci`: npm 11 writes lockfiles without other platforms' optional
# packages (esbuild, rollup) and then its own `npm ci` refuses them as out of
# sync. `npm install --no-save` installs exactly the locked versions and
# leaves package-lock.json untouched.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "deps: npm install (from package-lock.json)"
  if ! npm install --no-audit --no-fund --no-save > .npm-install.log 2>&1; then
    grep -v 'Unknown user config' .npm-install.log >&2
    echo "deps: npm install failed" >&2
    exit 1
  fi
  rm -f .npm-install.log
fi
