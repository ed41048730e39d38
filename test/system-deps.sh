#!/usr/bin/env bash
# Makes sure the tools the tests and the demo need beyond Node packages are present: Go (to
# build the local control plane), Python 3 with pip (to install moto, test/aws/moto.sh) and
# Debian packages. As root on Debian it installs missing
# packages; elsewhere it says exactly what to install.
set -euo pipefail

# command-name:debian-package. mmdebstrap builds the container image's Debian layer (npm run
# image); runc runs the image and qemu-user-static its arm64 build in the tests; python3 (with
# pip) installs moto for the live-price tests (test/aws/moto.sh).
needed=(openssl:openssl flock:util-linux docker-registry:docker-registry htpasswd:apache2-utils prometheus:prometheus
  mmdebstrap:mmdebstrap runc:runc qemu-aarch64-static:qemu-user-static python3:python3)

if ! command -v go >/dev/null; then
  echo "system-deps: Go 1.25 or newer is needed to build the local Kubernetes control plane; install it from go.dev/dl" >&2
  exit 1
fi

missing=()
for entry in "${needed[@]}"; do
  command -v "${entry%%:*}" >/dev/null || missing+=("${entry#*:}")
done
if command -v python3 >/dev/null && ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3-pip)
fi
# GNU time (peak memory of a command, for the benchmarks): `time` alone is the shell's keyword.
[[ -x /usr/bin/time ]] || missing+=(time)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "system-deps: installing ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
else
  echo "system-deps: please install these packages first: ${missing[*]}" >&2
  exit 1
fi
