#!/usr/bin/env bash
# Builds static release binaries of villagehub and villagesim for the boxes
# a village or a district runs: linux/amd64 (an old PC, a server),
# linux/arm64 (Raspberry Pi 4/5 with a 64-bit OS) and linux/arm v7
# (Raspberry Pi 2/3 or a 32-bit Raspberry Pi OS). CGO is off, so the
# binaries need no C library on the target.
#
#   scripts/release.sh [OUTDIR]     (default: ./dist)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
version="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"
mkdir -p "$out"
for target in linux/amd64 linux/arm64 linux/arm/7; do
  IFS=/ read -r os arch arm <<<"$target"
  suffix="$os-$arch${arm:+v$arm}"
  for cmd in villagehub villagesim; do
    echo "building $cmd for $suffix"
    CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" GOARM="${arm}" \
      go build -trimpath -ldflags "-s -w" -o "$out/$cmd-$suffix" "./cmd/$cmd"
  done
done
( cd "$out" && sha256sum villagehub-* villagesim-* > SHA256SUMS )
echo "version $version: binaries and SHA256SUMS in $out/"
