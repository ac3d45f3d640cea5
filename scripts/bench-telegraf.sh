#!/usr/bin/env bash
# bench-telegraf.sh — the side-by-side anchor in one run: on one tuned
# Mosquitto (configs/mosquitto/mosquitto.conf) and the same contract QR
# reports at QoS 1, the CPU per message (utime+stime from /proc) and the
# messages lost of: a bare paho subscriber (in its own process), the hub,
# Telegraf mqtt_consumer + JSON parser to outputs.discard and to
# outputs.prometheus_client; then the hub with its embedded broker (the
# whole system in one process).
#
#   scripts/bench-telegraf.sh [extra villagesim bench flags]
#
# MESSAGES (default 200000). Builds Telegraf first if missing
# (scripts/install-telegraf.sh, minutes, cached in $(go env GOPATH)/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-telegraf.sh
exec go run ./cmd/villagesim bench --side-by-side --qos 1 --devices 0 \
	--messages "${MESSAGES:-200000}" "$@" 2> >(grep -v -e '^[0-9]*: ' -e ' I! ' -e 'Strict environment variable' >&2)
