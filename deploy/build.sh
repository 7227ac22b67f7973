#!/usr/bin/env bash
# The build step of deploy/Dockerfile, as a script so that CI runs the same commands
# (.ci/run calls it with the dev profile, whose build the tests have already made).
# Usage: deploy/build.sh PROFILE OUTDIR   (PROFILE: dist for deployment, release, or dev)
# Builds with the committed Cargo.lock (--locked) and puts the binary at OUTDIR/verigate.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:?usage: deploy/build.sh PROFILE OUTDIR}"
out="${2:?usage: deploy/build.sh PROFILE OUTDIR}"
cargo build --locked --profile "$profile" --bin verigate
case "$profile" in
  dev) dir=debug ;;
  *) dir="$profile" ;;
esac
mkdir -p "$out"
install -m 0755 "${CARGO_TARGET_DIR:-target}/$dir/verigate" "$out/verigate"
"$out/verigate" --version
