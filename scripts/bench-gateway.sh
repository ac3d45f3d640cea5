#!/usr/bin/env bash
# bench-gateway.sh — one QR gateway instance with counting on against nginx
# answering a bare 302, same wrk run, same machine (docs/gateway.md).
#
#   scripts/bench-gateway.sh            # wrk -t2 -c50 -d15s, journal_sync off (the default)
#   SYNC=true DURATION=10s scripts/bench-gateway.sh   # fsync before each redirect
#   PROFILE=/tmp/gw.prof scripts/bench-gateway.sh     # and a CPU profile of the gateway
#   MAX_CLIENTS=65536 scripts/bench-gateway.sh        # qr.max_clients (default 262,144)
#   ROUNDS=8 DURATION=10s scripts/bench-gateway.sh    # alternate nginx and the gateway 8 times;
#                                                     # per-round ratios, their median
#
# Each request is a scan from one of $PHONES phones (X-Forwarded-For from a
# trusted proxy, a real phone agent: hub/scan/internal/loadserver/scan.lua)
# of one of the village's boards, so the gateway runs its whole human path:
# agent check, rate limit, unique window, a journal line (group write;
# fsync too with SYNC=true) and the InfluxDB spool behind it. InfluxDB is not running
# (its URL is a closed port): the spool keeps every point, which is the
# gateway's local cost; sending to InfluxDB happens off the request path.
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
PHONES=${PHONES:-100000}
SYNC=${SYNC:-false}
ROUNDS=${ROUNDS:-1}
for b in wrk nginx; do command -v $b >/dev/null || { echo "needs $b (apt-get install -y wrk nginx-light)"; exit 1; }; done
NGINX=$(command -v nginx)
. scripts/bench-lib.sh
bench_setup bench-gateway
GW=127.0.0.1:$(freeport); NG=127.0.0.1:$(freeport); DEAD=127.0.0.1:$(freeport)

go build -o "$tmp/villagehub" ./cmd/villagehub
go build -o "$tmp/loadserver" ./hub/scan/internal/loadserver
LS=127.0.0.1:$(freeport)
"$tmp/villagehub" gateway salt "$tmp/salt" >/dev/null
mkdir -p "$tmp/data"
# The village's targets as a gateway keeps them (as if received from the
# broker, which is not running here: the gateway serves from its cache).
python3 - "$tmp/data/targets.json" <<'PY'
import json, sys
t = [{"Village": "cho-ban", "Board": "sap-%03d" % i, "target": "https://example.vn/cho-ban/sap-%d" % i,
      "name": "Chợ Bản, sạp %d" % i, "site": "cho-ban", "hub": "hub-cb",
      "place": {"province": "thanh-hoa", "district": "ngoc-lac", "commune": "minh-son", "village": "cho-ban"}} for i in range(1, 301)]
json.dump({"targets": t}, open(sys.argv[1], "w"))
PY
cat > "$tmp/gateway.yaml" <<YAML
listen: $GW
public_url: https://qr.thanhhoa.gov.vn
data_dir: $tmp/data
instance: bench
journal_sync: $SYNC
journal_async: ${ASYNC:-false}
broker: { url: "tcp://$DEAD" }
influx: { url: "http://$DEAD", bucket: village/autogen }
qr: { trusted_proxies: [127.0.0.1], salt_file: $tmp/salt${MAX_CLIENTS:+, max_clients: $MAX_CLIENTS} }
YAML
"$tmp/villagehub" gateway --config "$tmp/gateway.yaml" --log-level error ${PROFILE:+--cpuprofile "$PROFILE"} &
gwpid=$!
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log stderr error; pid $tmp/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy; fastcgi_temp_path $tmp/nginx/fcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;
  server { listen $NG; location /q/ { add_header Cache-Control no-store; return 302 https://example.vn/cho-ban/sap-7; } }
}
CONF
"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e stderr &
# The hub's own /q/ handler with counting in memory only (docs/qr.md,
# Speed): what Go's HTTP server and the scan rules alone reach right now,
# to tell the journal's cost from the machine's load.
"$tmp/loadserver" -addr "$LS" -duration 10m -rate 1000000000 >/dev/null 2>&1 &
for a in $GW $NG $LS; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://$a/q/x" && break; sleep 0.1; done
done

run() { PHONES=$PHONES wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s hub/scan/internal/loadserver/scan.lua "$1"; }
ratios=()
for round in $(seq "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && echo "=== round $round of $ROUNDS"
  echo "== nginx, bare 302 ($NGINX)"
  nginx_out=$(run "http://$NG/q/cho-ban/sap-007"); echo "$nginx_out" | grep -E "Requests/sec|99%|Non-2xx|Socket errors" || true
  echo "== villagehub gateway, counting on (journal_sync=$SYNC journal_async=${ASYNC:-false})"
  before=$(curl -s "http://$GW/metrics" | awk '/^villagehub_gateway_scans_total\{.*board="sap-007"/ {s+=$2} END {print s+0}')
  c0=$(cputicks "$gwpid")
  gw_out=$(run "http://$GW/q/cho-ban/sap-007"); echo "$gw_out" | grep -E "Requests/sec|99%|Non-2xx|Socket errors" || true
  c1=$(cputicks "$gwpid")
  echo "== the hub's /q/ handler alone, counting in memory (hub/scan/internal/loadserver)"
  ls_out=$(run "http://$LS/q/market-07"); echo "$ls_out" | grep -E "Requests/sec|99%" || true
  sent=$(echo "$gw_out" | awk '/requests in/ {print $1}')
  counted=$(( $(curl -s "http://$GW/metrics" | awk '/^villagehub_gateway_scans_total\{.*board="sap-007"/ {s+=$2} END {print s+0}') - before ))
  pending=$(curl -s "http://$GW/metrics" | awk '/^villagehub_influx_spool_points / {print $2}')
  n=$(echo "$nginx_out" | awk '/Requests\/sec/ {print $2}'); g=$(echo "$gw_out" | awk '/Requests\/sec/ {print $2}')
  # wrk reports the requests it saw answered; ones in flight when it
  # stops are answered and counted too, so counted may exceed it by up
  # to the connections, never fall short.
  echo "requests answered to wrk: $sent, counted by the gateway (all classes): $counted, InfluxDB points spooled (all rounds): $pending"
  [ "$counted" -ge "$sent" ] || echo "LOST: $((sent - counted)) answered requests not counted"
  # CPU per request is steadier than the rate on a shared machine: the rate
  # moves with whatever wrk and the neighbours get, the work per request
  # much less.
  echo "gateway CPU per request: $(per_item $((c1 - c0)) "$sent") µs"
  l=$(echo "$ls_out" | awk '/Requests\/sec/ {print $2}')
  r=$(python3 -c "print(round($g/$n, 3))")
  ratios+=("$r")
  echo "ratio gateway/nginx: $r ($g vs $n req/s); handler alone/nginx: $(python3 -c "print(round($l/$n, 3))"); gateway/handler alone: $(python3 -c "print(round($g/$l, 3))")"
done
if [ "$ROUNDS" -gt 1 ]; then
  python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print("ratio gateway/nginx per round: %s; median %.3f; rounds >= 0.7: %d of %d" % (
    " ".join("%.3f" % x for x in r), statistics.median(r), sum(x >= 0.7 for x in r), len(r)))
PY
fi
if [ -n "${PROFILE:-}" ]; then
  kill -TERM "$gwpid"; wait "$gwpid" || true
  echo "CPU profile of the gateway's whole run: go tool pprof -top $PROFILE"
fi
echo "machine: $(nproc) cores shared with wrk and other work; $(uptime)"
