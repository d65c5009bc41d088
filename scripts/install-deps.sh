#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages keel needs to build, test
# and run. Idempotent and quiet when nothing is missing; runs `apt-get update`
# only when a package has to be installed. Every build, test and run command
# calls it, so a fresh machine needs nothing done by hand.
set -euo pipefail

packages=(
  # toolchain
  gcc make cmake pkg-config clang clang-format git curl python3
  # libraries (DESIGN.md: the chosen dependencies)
  libuv1-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev lmdb-utils
  libyaml-dev libnghttp2-dev libjansson-dev libssl-dev libcmocka-dev
  # libFuzzer and the sanitizer runtimes for clang (scripts/fuzz.sh)
  libclang-rt-14-dev
  # the real etcd client and server, for compatibility tests and comparisons
  etcd-client etcd-server
  # fault injection (jepsen/): namespaces, partitions, clocks, plots
  iproute2 iptables faketime gnuplot-nox
  # reference implementations installed from npm by tests (flags, profiles)
  nodejs  # the nodesource build on these machines bundles npm
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run this script as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
