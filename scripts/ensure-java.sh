#!/usr/bin/env bash
# TorchServe's frontend is Java: make sure a Java 17+ runtime is on PATH, installing Debian's
# openjdk-17-jre-headless where it is missing (needs root or sudo).
set -euo pipefail
version=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]}' || true)
if [[ -n "${version:-}" && "$version" -ge 17 ]]; then
  exit 0
fi
echo "Java 17 not found: installing openjdk-17-jre-headless" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openjdk-17-jre-headless >/dev/null
java -version
