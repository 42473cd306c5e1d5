#!/usr/bin/env bash
# Installs ghapp's binaries (ghapp, git-credential-ghapp, gh-pr) with `cargo install --locked`
# into PREFIX/bin and routes git's credentials for the host to the helper. Idempotent: a second
# run with the same version installed changes nothing. `--uninstall` removes what it added.
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
  # Undo configure-git only where the entries are exactly what it writes.
  if [ "$(git config --global --get-all "credential.https://$host.helper" 2>/dev/null | tr '\n' ',')" = ",ghapp," ]; then
    git config --global --unset-all "credential.https://$host.helper"
    git config --global --unset "credential.https://$host.useHttpPath" || true
    echo "removed the git credential routing for $host"
  fi
  for p in "${packages[@]}"; do
    if [ -e "$bin/$p" ]; then
      cargo uninstall --root "$prefix" "$p" >/dev/null 2>&1 || rm -f "$bin/$p"
      echo "removed $bin/$p"
    fi
  done
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
    cargo install "${cargo_flags[@]}" --quiet --root "$prefix" --path "$root/crates/$p"
    echo "installed $p $version into $bin"
  fi
done
"$bin/ghapp" configure-git --host "$host"
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "note: $bin is not on PATH; add it so git finds git-credential-ghapp" ;;
esac
