#!/usr/bin/env bash
# Installs the Debian packages gatehouse builds, tests and demos with. Idempotent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-16 libclang-rt-16-dev
  liburing-dev libssl-dev libhyperscan-dev libpg-query-dev libyaml-cpp-dev libcli11-dev
  nlohmann-json3-dev libsqlite3-dev libfmt-dev libpq-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev libre2-dev libssh-dev
  postgresql postgresql-client openssh-server openssh-client openssl procps util-linux
  git xauth
)
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
