#!/usr/bin/env bash
# Builds one layer of kopek's container image (see build.ts, which assembles them) as a
# reproducible gzipped tar: entries sorted by name, numeric owners, fixed modification times,
# no atime/ctime, `gzip -n`. Prints the layer's directory on stdout, holding layer.tar.gz, its
# digest, diff-id (the sha256 of the tar), tar-size and description; progress goes to stderr.
#
#   layer.sh debian ARCH PACKAGES    Debian's runtime libraries, CA certificates, tzdata and a
#                                    non-root user (cached, keyed on the exact .deb files)
#   layer.sh node ARCH VERSION       Node.js's binary from the node-linux-ARCH npm package
#                                    (cached, keyed on the version)
#   layer.sh deps                    the production dependencies, `npm ci --omit=dev` (cached,
#                                    keyed on package.json and package-lock.json)
#   layer.sh app OUT EPOCH SOURCE PATHS EXCLUDED
#                                    kopek itself (comma-separated PATHS of the directory SOURCE,
#                                    where build.ts compiled it, less EXCLUDED patterns) under
#                                    /app, dated EPOCH, into OUT; never cached: it changes with
#                                    every commit, and takes a second
#
# The three slow layers are dated 1970-01-01, so their bytes depend only on their pinned inputs
# and a build of another commit reuses them. They live in ~/.cache/kopek/image/bin (or under
# $KOPEK_CACHE_DIR), one directory per layer and key, older keys pruned.
set -euo pipefail
# What the build creates gets the same modes whatever the caller's umask.
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/../build-cache.sh"
# The layers are cached under ~/.cache/kopek/image/bin/ (build-cache.sh's bin/ in image/).
cache_root=$cache_root/image

# The Debian release the image is built on: the one distroless's nodejs24-debian12 (the
# Dockerfile's runtime stage) is built on. test/chart/dockerfile.test.ts keeps them in step.
debian_suite=bookworm

# make_layer DIR EPOCH OWNER PATH... — tars PATHs (relative to DIR) into $staging/layer.tar.gz
# and writes their sha256 (the image config's diff_id) to $staging/diff-id. OWNER "keep" keeps
# the files' numeric owners and modes (the Debian root filesystem has a non-root home and a
# sticky /tmp); "root" makes everything root's, 0644 or 0755 (directories and executables),
# whatever the checkout's umask was.
make_layer() {
  local dir=$1 epoch=$2 owner=$3
  shift 3
  local flags=(--sort=name --format=posix --numeric-owner "--mtime=@$epoch"
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
  [[ $owner == root ]] && flags+=(--owner=0 --group=0 --mode=u=rwX,go=rX)
  tar --create --directory="$dir" "${flags[@]}" -- "$@" | gzip -n >"$staging/layer.tar.gz"
  echo "sha256:$(gzip -dc "$staging/layer.tar.gz" | sha256sum | cut -d' ' -f1)" >"$staging/diff-id"
  gzip -dc "$staging/layer.tar.gz" | wc -c >"$staging/tar-size"
  echo "sha256:$(sha256sum "$staging/layer.tar.gz" | cut -d' ' -f1)" >"$staging/digest"
}

# cached_build_begin, and a note of the time, for built() to say how long the build took.
begin() {
  cached_build_begin "$1" "$2"
  echo "layer.sh: building the $1 layer" >&2
  started=$SECONDS
}

built() {
  echo "layer.sh: built the $build_name layer in $((SECONDS - started)) s" >&2
  cached_build_end "$1"
}

need_root() {
  [[ $(id -u) -eq 0 ]] || {
    echo "layer.sh: building the $1 layer needs root (it sets file owners in the image)" >&2
    exit 1
  }
}

debian_layer() {
  local arch=$1 packages=$2
  need_root debian
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir "$work/debs" "$work/rootfs"
  # mmdebstrap resolves the packages for ARCH in the release's main, updates and security
  # suites, checks their signatures and downloads them (with their dependencies, which the
  # image does not need: ca-certificates' and tzdata's configuration scripts want debconf and
  # openssl, Node only the libraries). Only the named packages are unpacked below.
  mmdebstrap --quiet --variant=extract --architectures="$arch" --include="$packages" \
    --extract-hook="cp \"\$1\"/var/cache/apt/archives/*.deb '$work/debs/'" \
    "$debian_suite" /dev/null >&2
  local wanted=() name
  IFS=', ' read -r -a wanted <<<"$packages"
  local debs=()
  for name in "${wanted[@]}"; do
    local deb=("$work/debs/${name}_"*.deb)
    [[ -f ${deb[0]} && ${#deb[@]} -eq 1 ]] || { echo "layer.sh: mmdebstrap did not download $name for $arch" >&2; exit 1; }
    debs+=("${deb[0]}")
  done
  local key
  key=$({ cat "$here/layer.sh" "$here/../build-cache.sh"; echo "$arch"; sha256sum "${debs[@]}" | cut -d' ' -f1; } | sha256sum | cut -c1-16)
  begin "debian-$arch" "$key"

  local rootfs=$work/rootfs
  # A merged /usr, as Debian 12 installs it: /lib64/ld-linux-x86-64.so.2, the interpreter
  # Node's binary names, resolves into /usr/lib64.
  mkdir -p "$rootfs/usr/bin" "$rootfs/usr/sbin" "$rootfs/usr/lib"
  ln -s usr/bin "$rootfs/bin"
  ln -s usr/sbin "$rootfs/sbin"
  ln -s usr/lib "$rootfs/lib"
  if [[ $arch == amd64 ]]; then mkdir "$rootfs/usr/lib64" && ln -s usr/lib64 "$rootfs/lib64"; fi
  mkdir -p "$rootfs/var/lib/dpkg/status.d"
  local deb package version
  for deb in "${debs[@]}"; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$rootfs"
    # What scanners (Trivy, Grype, Syft) read to list the packages of a distroless image.
    package=$(dpkg-deb --field "$deb" Package)
    version=$(dpkg-deb --field "$deb" Version)
    dpkg-deb --field "$deb" >"$rootfs/var/lib/dpkg/status.d/$package"
    echo "$package $version" >>"$staging/packages"
  done
  # Documentation and lintian overrides are not needed at run time; the licences stay.
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs/usr/share/man" "$rootfs/usr/share/info" "$rootfs/usr/share/lintian"
  # ca-certificates' configuration script would write this bundle with update-ca-certificates:
  # every certificate it ships, in order.
  mkdir -p "$rootfs/etc/ssl/certs"
  find "$rootfs/usr/share/ca-certificates" -name '*.crt' -print0 | LC_ALL=C sort -z |
    xargs -0 cat >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  # The users distroless images have; kopek runs as nonroot (65532), the chart's runAsUser.
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'nonroot:x:65532:' >"$rootfs/etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
  mkdir -p "$rootfs/home/nonroot" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
  chown 65532:65532 "$rootfs/home/nonroot"
  chmod 0700 "$rootfs/home/nonroot"
  chmod 1777 "$rootfs/tmp"
  local entries
  mapfile -t entries < <(cd "$rootfs" && LC_ALL=C ls -A)
  make_layer "$rootfs" 0 keep "${entries[@]}"
  echo "debian $debian_suite: $(cut -d' ' -f1 "$staging/packages" | paste -sd' ')" >"$staging/description"
  built "debian $debian_suite $arch"
}

node_layer() {
  local arch=$1 version=$2
  local npm_arch=$arch
  [[ $arch == amd64 ]] && npm_arch=x64
  local key
  key=$({ cat "$here/layer.sh" "$here/../build-cache.sh"; echo "$arch $version"; } | sha256sum | cut -c1-16)
  begin "node-$arch" "$key"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # npm checks the package against the registry's integrity hash; it holds Node's official
  # linux build for that version.
  (cd "$work" && npm pack --silent "node-linux-$npm_arch@$version" >/dev/null)
  mkdir -p "$work/stage/nodejs"
  tar -xzf "$work"/node-linux-*.tgz -C "$work" package/bin/node package/LICENSE
  # Where distroless's nodejs images have it; only the binary (no npm, npx or corepack).
  mv "$work/package/bin" "$work/package/LICENSE" "$work/stage/nodejs/"
  make_layer "$work/stage" 0 root nodejs
  echo "node $version (node-linux-$npm_arch)" >"$staging/description"
  built "node $version $arch"
}

deps_layer() {
  local key
  key=$({ cat "$here/layer.sh" "$here/../build-cache.sh" "$root/package.json" "$root/package-lock.json"; } | sha256sum | cut -c1-16)
  begin deps "$key"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/app"
  cp "$root/package.json" "$root/package-lock.json" "$work/app/"
  # The Dockerfile's build stage runs the same command.
  (cd "$work/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --silent >&2)
  # One layer serves both architectures only while no production dependency is a native
  # addon; a new one must be installed per architecture (and its install script allowed).
  local native
  native=$(cd "$work/app" && find node_modules -name '*.node' -type f | head -5)
  if [[ -n $native ]]; then
    echo "layer.sh: production dependencies carry native addons, which this build does not cross-install: $native" >&2
    exit 1
  fi
  make_layer "$work" 0 root app/node_modules
  echo "npm ci --omit=dev --ignore-scripts" >"$staging/description"
  built "deps"
}

app_layer() {
  local out=$1 epoch=$2 source=$3 paths excluded pattern
  IFS=, read -r -a paths <<<"$4"
  IFS=, read -r -a excluded <<<"$5"
  local excludes=()
  for pattern in "${excluded[@]}"; do excludes+=("--exclude=$pattern"); done
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/app"
  tar --create --directory="$source" "${excludes[@]}" -- "${paths[@]}" | tar -x -C "$work/app"
  mkdir -p "$out"
  staging=$out
  make_layer "$work" "$epoch" root app
  echo "kopek, compiled" >"$out/description"
  echo "$out"
}

case ${1:-} in
  debian) debian_layer "$2" "$3" ;;
  node) node_layer "$2" "$3" ;;
  deps) deps_layer ;;
  app) app_layer "$2" "$3" "$4" "$5" "$6" ;;
  *) echo "usage: layer.sh debian ARCH PACKAGES | node ARCH VERSION | deps | app OUT EPOCH SOURCE PATHS EXCLUDED" >&2; exit 1 ;;
esac
