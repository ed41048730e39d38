#!/usr/bin/env bash
# Builds the local control plane's binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok) from the pinned wrapper modules beside this script,
# once, into a cache outside git keyed on everything that decides their content.
# Prints the directory holding the binaries on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../build-cache.sh"

command -v go >/dev/null || { echo "build.sh: Go is required to build the local control plane (go.dev/dl)" >&2; exit 1; }

kube_version=$(cd "$here/kubernetes" && go list -m -f "{{.Version}}" k8s.io/kubernetes)
[[ $kube_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || { echo "build.sh: cannot read the pinned Kubernetes version" >&2; exit 1; }
kube_major=${BASH_REMATCH[1]}
kube_minor=${BASH_REMATCH[2]}

key=$(cd "$here" && { cat build.sh ../../build-cache.sh ./*/go.mod ./*/go.sum ./*/*.go; go version; } | sha256sum | cut -c1-16)
cached_build_begin control-plane "$key"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

# Clients read these to learn the server's version (kubectl version, discovery).
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$kube_major -X $pkg.gitMinor=$kube_minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # module-dir output-name package ldflags
  local started=$SECONDS
  echo "build.sh: building $2 (cold builds take minutes on 2 cores)" >&2
  (cd "$here/$1" && go build -trimpath -ldflags "$4" -o "$staging/$2" "$3")
  echo "build.sh: built $2 in $((SECONDS - started)) s" >&2
}
build kubernetes kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kubernetes kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kubernetes kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
build kubernetes kubectl k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
build etcd etcd . "-s -w"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-s -w"

cached_build_end "kubernetes $kube_version"
