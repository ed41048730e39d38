#!/usr/bin/env bash
# Builds the local control plane's binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok) from the pinned wrapper modules beside this script,
# once, into a cache outside git keyed on everything that decides their content.
# Prints the directory holding the binaries on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${KOPEK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kopek}

command -v go >/dev/null || { echo "build.sh: Go is required to build the local control plane (go.dev/dl)" >&2; exit 1; }

kube_version=$(cd "$here/kubernetes" && go list -m -f "{{.Version}}" k8s.io/kubernetes)
[[ $kube_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || { echo "build.sh: cannot read the pinned Kubernetes version" >&2; exit 1; }
kube_major=${BASH_REMATCH[1]}
kube_minor=${BASH_REMATCH[2]}

key=$(cd "$here" && { cat build.sh ./*/go.mod ./*/go.sum ./*/*.go; go version; } | sha256sum | cut -c1-16)
out="$cache_root/bin/$key"
if [[ -f $out/.complete ]]; then echo "$out"; exit 0; fi

mkdir -p "$cache_root/bin"
exec 9>"$cache_root/bin/.lock"
echo "build.sh: waiting for any other build of the control plane to finish" >&2
flock 9
if [[ -f $out/.complete ]]; then echo "$out"; exit 0; fi

staging="$out.partial"
rm -rf "$staging"
mkdir -p "$staging"
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

echo "kubernetes $kube_version" > "$staging/.complete"
rm -rf "$out"
mv "$staging" "$out"
echo "$out"
