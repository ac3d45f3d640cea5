#!/usr/bin/env bash
# Builds the real InfluxDB 1.8.10 server that the tests start
# (hub/testenv.StartInflux), once: about 2.5 minutes on 2 cores, then cached
# as $(go env GOPATH)/bin/influxd. Skips the build when a 1.8.10 binary is
# already there. Set VILLAGEHUB_INFLUXD to use a binary elsewhere.
set -euo pipefail

version=v1.8.10
target="${VILLAGEHUB_INFLUXD:-$(go env GOPATH | cut -d: -f1)/bin/influxd}"

if [ -x "$target" ] && go version -m "$target" 2>/dev/null | grep -q "github.com/influxdata/influxdb[[:space:]]*${version}"; then
	echo "influxd ${version} already at ${target}"
	exit 0
fi

echo "building influxd ${version} into ${target} (about 2.5 minutes, once)..."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Built from a scratch directory so that neither this module nor the
# caller's GOFLAGS get in the way.
(cd "$tmp" && GOFLAGS= GOBIN="$tmp" go install "github.com/influxdata/influxdb/cmd/influxd@${version}")
mkdir -p "$(dirname "$target")"
mv "$tmp/influxd" "$target"
echo "influxd ${version} installed at ${target}"
