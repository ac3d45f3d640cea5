#!/usr/bin/env bash
# install-telegraf.sh — builds Telegraf with only the plugins the side-by-side
# benchmark uses (`villagesim bench --side-by-side`, scripts/bench-telegraf.sh)
# into $(go env GOPATH)/bin, once: a binary already there is kept. Takes a
# few minutes cold; not part of `make test`.
set -euo pipefail
VERSION=${TELEGRAF_VERSION:-v1.37.2}
BIN="$(go env GOPATH)/bin/telegraf"
if [ -x "$BIN" ]; then
	echo "telegraf: $BIN already built ($("$BIN" --version 2>/dev/null | head -1))"
	exit 0
fi
go install -tags "custom,inputs.mqtt_consumer,inputs.internal,outputs.discard,outputs.prometheus_client,outputs.influxdb_v2,parsers.json" \
	"github.com/influxdata/telegraf/cmd/telegraf@$VERSION"
echo "telegraf: built $BIN"
