#!/usr/bin/env bash
# pgo-profile.sh — regenerates cmd/villagehub/default.pgo, the CPU profile
# Go's profile-guided optimisation builds the hub with: `go build`, `go run`
# and scripts/release.sh pick up default.pgo in the main package's directory
# by themselves (-pgo=off builds without it). See docs/performance.md,
# "Ninth pass".
#
#   scripts/pgo-profile.sh          (about 3 minutes; needs what the benches need)
#
# The profile is the hub's three hot paths under the repository's own
# benches, merged (go tool pprof -proto): MQTT ingest through the embedded
# broker (villagesim bench, three runs, 10 s of profile each), /q/
# redirects (bench-redirect, one round) and the QR gateway (bench-gateway).
# The hub is built with -pgo=off for it, so that the profile describes the
# code and not the previous profile's inlining decisions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_setup pgo-profile

export GOFLAGS="${GOFLAGS:+$GOFLAGS }-pgo=off"
go build -o "$tmp/villagehub" ./cmd/villagehub
go build -o "$tmp/villagesim" ./cmd/villagesim
profiles=()
for i in 1 2 3; do
	"$tmp/villagesim" bench --brokers embedded --qos 1 --messages 800000 --devices 0 \
		--hub-bin "$tmp/villagehub" --cpuprofile-dir "$tmp/ingest$i" --cpuprofile-seconds 10 | grep '^embedded'
	profiles+=("$tmp/ingest$i/embedded-qos1.pprof")
done
PROFILE="$tmp/q.pprof" ROUNDS=1 scripts/bench-redirect.sh "$tmp/villagehub" | grep -E '^ +rate'
profiles+=("$tmp/q.pprof.1.1")
PROFILE="$tmp/gateway.pprof" scripts/bench-gateway.sh | grep -E '^ratio'
profiles+=("$tmp/gateway.pprof")
for p in "${profiles[@]}"; do
	[ -s "$p" ] || { echo "pgo-profile: no profile at $p" >&2; exit 1; }
done
go tool pprof -proto "${profiles[@]}" >"$tmp/default.pgo" 2>/dev/null
mv "$tmp/default.pgo" cmd/villagehub/default.pgo
echo "pgo-profile: cmd/villagehub/default.pgo ($(stat -c %s cmd/villagehub/default.pgo) bytes) from ${#profiles[@]} profiles"
