#!/usr/bin/env bash
# Build the step images from the static binaries: FROM scratch, nothing pulled.
#
#   docker/build-images.sh [step ...]     default: every step with a containers/<step>/Dockerfile
#
# Builds the binaries first (release profile, musl target, as the tests use) unless
# SAGESTEP_SKIP_CARGO=1. Tags sagestep-<step>:<version> and sagestep-<step>:latest.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=x86_64-unknown-linux-musl
bin_dir="${CARGO_TARGET_DIR:-$root/target}/$target/release"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
ca_bundle=${SAGESTEP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

if [ "$#" -gt 0 ]; then
  steps=("$@")
else
  steps=()
  for dir in containers/*/; do steps+=("$(basename "$dir")"); done
fi

if [ "${SAGESTEP_SKIP_CARGO:-0}" != 1 ]; then
  cargo build --release --locked --bins
fi

for step in "${steps[@]}"; do
  dockerfile="containers/$step/Dockerfile"
  binary="$bin_dir/$step"
  [ -f "$dockerfile" ] || { echo "build-images: no $dockerfile" >&2; exit 1; }
  [ -x "$binary" ] || { echo "build-images: no binary $binary (cargo build --release)" >&2; exit 1; }
  # Smoke test before packaging: the binary runs, and it is fully static (the image has no libc).
  "$binary" --version >/dev/null
  if ! file -b "$binary" | grep -q 'statically linked'; then
    echo "build-images: $binary is not statically linked: $(file -b "$binary")" >&2
    exit 1
  fi
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  cp "$binary" "$dockerfile" "$context/"
  # TLS roots for images that talk to S3 themselves (the build host's Mozilla bundle).
  if grep -q ca-certificates.crt "$dockerfile"; then
    [ -f "$ca_bundle" ] || { echo "build-images: no CA bundle at $ca_bundle (apt-get install ca-certificates)" >&2; exit 1; }
    cp "$ca_bundle" "$context/ca-certificates.crt"
  fi
  docker build --quiet \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    -t "sagestep-$step:$version" -t "sagestep-$step:latest" "$context" >/dev/null
  rm -rf "$context"
  trap - EXIT
  size=$(docker image inspect -f '{{.Size}}' "sagestep-$step:latest")
  echo "built sagestep-$step:$version ($((size / 1024)) KiB)"
done
