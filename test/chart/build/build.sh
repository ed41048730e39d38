#!/usr/bin/env bash
# Builds helm (v3) from the pinned wrapper module beside this script (helm/go.mod), once, into
# a cache outside git keyed on everything that decides its content — the same scheme as
# test/cluster/build/build.sh. Prints the directory holding the binary on stdout; progress
# goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../build-cache.sh"

command -v go >/dev/null || { echo "chart build.sh: Go is required to build helm (go.dev/dl)" >&2; exit 1; }

helm_version=$(cd "$here/helm" && go list -m -f "{{.Version}}" helm.sh/helm/v3)
[[ $helm_version =~ ^v3\.[0-9]+\.[0-9]+$ ]] || { echo "chart build.sh: cannot read the pinned Helm v3 version" >&2; exit 1; }
client_go=$(cd "$here/helm" && go list -m -f "{{.Version}}" k8s.io/client-go)
[[ $client_go =~ ^v0\.([0-9]+)\.[0-9]+$ ]] || { echo "chart build.sh: cannot read helm's client-go version" >&2; exit 1; }
kube_minor=${BASH_REMATCH[1]}

key=$(cd "$here" && { cat build.sh ../../build-cache.sh helm/go.mod helm/go.sum; go version; } | sha256sum | cut -c1-16)
cached_build_begin helm "$key"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

# As helm's own Makefile does: its version, and the Kubernetes version `helm template` and
# `helm lint` assume when no cluster is asked (client-go v0.N → Kubernetes 1.N).
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done

started=$SECONDS
echo "chart build.sh: building helm $helm_version (a cold build takes about 1.5 minutes on 2 cores)" >&2
(cd "$here/helm" && go build -trimpath -ldflags "$ldflags" -o "$staging/helm" helm.sh/helm/v3/cmd/helm)
echo "chart build.sh: built helm in $((SECONDS - started)) s" >&2

cached_build_end "helm $helm_version"
