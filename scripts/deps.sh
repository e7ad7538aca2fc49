#!/usr/bin/env bash
# Installs the Debian packages Herald needs, only those missing.
# Usage: scripts/deps.sh [build|test|bench]   (default: build)
# Idempotent: checks each package with dpkg-query before calling apt-get.
set -euo pipefail

build_pkgs=(meson ninja-build pkg-config gcc libuv1-dev zlib1g-dev libsnappy-dev uthash-dev
            liblz4-dev libzstd-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev python3)
test_pkgs=(clang libcmocka-dev librdkafka-dev kcat python3-confluent-kafka
           python3-kafka python3-pytest python3-pika python3-celery amqp-tools prometheus chromium)
bench_pkgs=(librdkafka-dev librabbitmq-dev amqp-tools rabbitmq-server)

want=("${build_pkgs[@]}")
case "${1:-build}" in
  build) ;;
  test)  want+=("${test_pkgs[@]}") ;;
  bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# The kafkajs and amqplib tests need node and npm; any install of them will do.
if [ "${1:-build}" != build ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
