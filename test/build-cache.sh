# Sourced by the build scripts (test/cluster/build/build.sh, test/chart/build/build.sh): a
# build done once into a cache outside git, keyed on everything that decides its content,
# safe when several test runs build at once.
#
#   cached_build_begin NAME KEY   prints the cached directory (bin/NAME-KEY) and exits if it is
#                                 complete; otherwise takes the lock and sets $staging to build into
#   cached_build_end MARKER       marks the build complete, moves it in place, removes NAME's
#                                 builds for other keys (old pins), and prints its directory

cache_root=${KOPEK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kopek}

cached_build_begin() {
  build_name=$1
  out="$cache_root/bin/$1-$2"
  if [[ -f $out/.complete ]]; then echo "$out"; exit 0; fi
  mkdir -p "$cache_root/bin"
  exec 9>"$cache_root/bin/.lock-$build_name"
  echo "$build_name: waiting for any other build of it to finish" >&2
  flock 9
  if [[ -f $out/.complete ]]; then echo "$out"; exit 0; fi
  staging="$out.partial"
  rm -rf "$staging"
  mkdir -p "$staging"
}

cached_build_end() {
  echo "$1" > "$staging/.complete"
  rm -rf "$out"
  mv "$staging" "$out"
  local old
  for old in "$cache_root/bin/$build_name"-*; do
    # Another run may be building another key right now: leave partial builds alone.
    [[ $old == "$out" || $old == *.partial ]] || rm -rf "$old"
  done
  echo "$out"
}
