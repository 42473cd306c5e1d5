#!/usr/bin/env bash
# Installs ghapp's binaries (ghapp, git-credential-ghapp, gh-pr) with `cargo install --locked`
# into PREFIX/bin and routes git's credentials for the host to the helper. Idempotent: a second
# run with the same version installed changes nothing. `--uninstall` removes what it added:
# the binaries, cargo's records of them, and git's routing to ghapp for every host.
#
#   install/install.sh [--prefix DIR] [--host HOST] [--debug] [--uninstall]
set -euo pipefail

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

prefix="${CARGO_HOME:-$HOME/.cargo}"
host=""
uninstall=0
cargo_flags=(--locked)
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --host) host="${2:?--host needs a host}"; shift 2 ;;
    --debug) cargo_flags+=(--debug); shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
packages=(ghapp git-credential-ghapp gh-pr)
bin="$prefix/bin"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
[ -n "$host" ] || host="github.com"

if [ "$uninstall" = 1 ]; then
  # Undo configure-git for every host it routed, where the entries are exactly what it writes.
  git config --global --get-regexp '^credential\..*\.helper$' 2>/dev/null |
    while read -r key value; do
      [ "$value" = "ghapp" ] || continue
      url="${key#credential.}"; url="${url%.helper}"
      [ "$(git config --global --get-all "$key" | tr '\n' ',')" = ",ghapp," ] || continue
      git config --global --unset-all "$key"
      git config --global --unset "credential.$url.useHttpPath" || true
      echo "removed the git credential routing for $url"
    done
  for p in "${packages[@]}"; do
    if [ -e "$bin/$p" ]; then
      cargo uninstall --root "$prefix" "$p" >/dev/null 2>&1 || rm -f "$bin/$p"
      echo "removed $bin/$p"
    fi
  done
  # cargo's records of what it installed under PREFIX, once they record nothing else.
  if [ -f "$prefix/.crates2.json" ] && ! grep -q '"[^"]* [0-9][^"]* (' "$prefix/.crates2.json"; then
    rm -f "$prefix/.crates2.json" "$prefix/.crates.toml"
  fi
  rmdir "$bin" 2>/dev/null || true
  exit 0
fi

installed_version() {
  [ -x "$bin/$1" ] || return 1
  "$bin/$1" --version 2>/dev/null | awk '{print $2}'
}

for p in "${packages[@]}"; do
  if [ "$(installed_version "$p" || true)" = "$version" ]; then
    echo "$p $version is already installed in $bin"
  else
    # The first build takes a few minutes: cargo shows its progress.
    echo "building $p $version (cargo install; the first build takes a few minutes)..."
    cargo install "${cargo_flags[@]}" --root "$prefix" --path "$root/crates/$p"
    echo "installed $p $version into $bin"
  fi
done
"$bin/ghapp" configure-git --host "$host"
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "note: $bin is not on PATH; add it so git finds git-credential-ghapp" ;;
esac
