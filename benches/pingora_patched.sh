#!/usr/bin/env bash
# Builds verigate against Pingora from crates.io with patches of ours applied, to measure a
# change inside Pingora before proposing it upstream. verigate's own build never uses this:
# Cargo.toml and Cargo.lock name crates.io's Pingora, and are restored when this script ends.
#
# Usage: benches/pingora_patched.sh [PATCH...]    (default: every benches/pingora-patches/*.patch)
# Each patch is a `diff -ru a b` of crate folders named as in the registry (pingora-core-0.9.1/...).
# It prints the path of the binary (the `dist` profile unless VG_PROFILE says otherwise), copied
# out of the target folder so that the next ordinary build does not overwrite it; compare with
#   VG_BIN=<that path> CALLGRIND=1 benches/load.sh     (and the same without VG_BIN)
# The ordinary build afterwards rebuilds the Pingora crates from crates.io (their fingerprints
# changed), which takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE_NAME="${VG_PROFILE:-dist}"
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET/pingora-patched"
patches=("$@")
[ ${#patches[@]} -gt 0 ] || patches=(benches/pingora-patches/*.patch)
command -v patch >/dev/null || { echo "needs patch(1) (apt-get install -y patch)" >&2; exit 2; }

cargo fetch --locked --quiet
registry_src() { # the unpacked crates.io source of a crate at the version the lock file pins
  local name="$1" version
  version=$(awk -v n="$name" '$0=="name = \""n"\"" {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$name-$version" 2>/dev/null | head -1
}

rm -rf "$OUT/src" && mkdir -p "$OUT/src"
config=()
declare -A copied=()
for p in "${patches[@]}"; do
  # The crate folders a patch touches: the first path component after a/ in its +++ lines.
  for dir in $(sed -n 's#^+++ b/\([^/]*\)/.*#\1#p' "$p" | sort -u); do
    [ -n "${copied[$dir]:-}" ] && continue
    name="${dir%-*}"
    src=$(registry_src "$name")
    [ -n "$src" ] && [ "$(basename "$src")" = "$dir" ] \
      || { echo "$p patches $dir, but Cargo.lock pins $(basename "${src:-$name-?}")" >&2; exit 2; }
    cp -a "$src" "$OUT/src/"
    chmod -R u+w "$OUT/src/$dir"
    copied[$dir]=1
    config+=(--config "patch.crates-io.$name.path=\"$PWD/$OUT/src/$dir\"")
  done
  (cd "$OUT/src" && patch -s -p1 < "$OLDPWD/$p") || { echo "$p does not apply" >&2; exit 2; }
  echo "applied $p" >&2
done

cp Cargo.lock "$OUT/Cargo.lock.orig"
restore() { cp "$OUT/Cargo.lock.orig" Cargo.lock; }
trap restore EXIT
cargo build --profile "$PROFILE_NAME" --quiet --bin verigate "${config[@]}"
cp "$TARGET/$PROFILE_NAME/verigate" "$OUT/verigate"
echo "$PWD/$OUT/verigate"
