#!/usr/bin/env bash
# bench-redirect.sh — the hub's /q/<board> redirect (counting on) against the
# ceiling: Debian's nginx answering a bare 302, measured the same way in one
# run on this machine.
#
#   scripts/bench-redirect.sh [HUB_BINARY...]
#
# With several hub binaries (say a baseline and a candidate) each is run in
# turn in every round, so they are compared under the same load.
# Both servers listen on free loopback ports; wrk (Debian 4.1) runs
# `wrk -t2 -c50 -d15s --latency` against each with the same requests:
# a phone browser's User-Agent (Zalo on Android) and an X-Forwarded-For
# from one of $PHONES (5,000) phones, the hub trusting 127.0.0.1 as its
# proxy (hub/scan/internal/loadserver/scan.lua). Every hub request is
# counted (unique/rate-limited as the phone's history says).
# Needs: nginx-light, wrk (scripts/install-deps.sh). Environment:
#   DURATION (15s), CONNS (50), THREADS (2), PHONES (5000), ROUNDS (1):
#   ROUNDS>1 repeats the runs (Go's net/http and fasthttp with a bare 302,
#   then nginx, the hub, nginx again for each hub: the hub is held to the
#   mean of the nginx runs either side of it) that many times: a shared
#   machine is noisy and drifts; the last lines say in how many rounds each
#   hub held each target. PROFILE=path saves a CPU profile of the hub
#   during each of its runs (path.N).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-1}
export PHONES=${PHONES:-5000}
LUA=hub/scan/internal/loadserver/scan.lua
for c in nginx wrk; do
	command -v $c >/dev/null || [ -x /usr/sbin/$c ] || { echo "bench-redirect: $c missing (scripts/install-deps.sh)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

. scripts/bench-lib.sh
bench_setup bench-redirect

HUBS=("$@")
if [ ${#HUBS[@]} -eq 0 ]; then
	HUBS=("$tmp/villagehub")
	go build -o "${HUBS[0]}" ./cmd/villagehub
fi
# Two more rows: Go's net/http and fasthttp (the transport of the hub's
# /q/) answering a bare 302 (nothing counted): the floors of a Go server
# on this machine, for the rate and for p99.
go build -o "$tmp/loadserver" ./hub/scan/internal/loadserver
GPORT=$(freeport)
"$tmp/loadserver" -bare -addr "127.0.0.1:$GPORT" -duration 2h >/dev/null &
pids+=($!)
FPORT=$(freeport)
"$tmp/loadserver" -bare-fasthttp -addr "127.0.0.1:$FPORT" -duration 2h >/dev/null &
pids+=($!)

# nginx: one worker, no master (as its own user, in the foreground), logs
# off: the bare cost of a 302 on this machine.
NPORT=$(freeport)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $tmp/nginx/error.log warn;
pid $tmp/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$NPORT;
    location /q/ { add_header Cache-Control no-store; return 302 https://example.vn/cho-ban/sap-7; }
  }
}
EOF
"$NGINX" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" &
pids+=($!)
NGINXPID=$!

# The hubs: one board each, loopback as the trusted proxy, logs at error.
HPORTS=()
HUBPIDS=()
met_rate=()
met_p99=()
met_both=()
i=0
for bin in "${HUBS[@]}"; do
	i=$((i + 1))
	port=$(freeport)
	d="$tmp/hub$i"
	mkdir -p "$d"
	printf '%s\n' "http:" "  public_url: http://127.0.0.1:$port" "qr:" "  trusted_proxies: [127.0.0.1]" \
		"sites:" '  - { id: cho-ban, name: "Chợ Bản" }' "qr_boards:" \
		'  - { id: market-07, site: cho-ban, name: "Chợ Bản, sạp 7", target_url: "https://example.vn/cho-ban/sap-7" }' >"$d/hub.yaml"
	# /debug/pprof for PROFILE, where the hub has the debug.pprof key.
	if [ -n "${PROFILE:-}" ]; then
		cp "$d/hub.yaml" "$d/hub.yaml.base"
		echo "debug: { pprof: true }" >>"$d/hub.yaml"
		"$bin" check-config "$d/hub.yaml" >/dev/null 2>&1 || mv "$d/hub.yaml.base" "$d/hub.yaml"
	fi
	"$bin" --config "$d/hub.yaml" --data-dir "$d" --http-addr "127.0.0.1:$port" \
		--broker-addr "127.0.0.1:$(freeport)" --log-level error &
	pids+=($!)
	HUBPIDS+=($!)
	HPORTS+=("$port")
done
waitport "$NPORT"
waitport "$GPORT"
waitport "$FPORT"
for port in "${HPORTS[@]}"; do
	waitport "$port"
	for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

# wrk's summary: requests/s, p50, p99 (in ms), non-3xx answers, requests.
run() {
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$1" >"$tmp/wrk.out"
	awk '
	function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
	/^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
	/^Requests\/sec/ { rps = $2 }
	/ requests in / { reqs = $1 }
	/Non-2xx or 3xx/ { bad = $NF }
	END { printf "%.0f %.3f %.3f %d %d\n", rps, p50, p99, bad, reqs }' "$tmp/wrk.out"
}
# row ROUND LABEL PORT: one wrk run against PORT, printed as a row of the
# table; leaves its figures in RPS, P99 and REQS.
row() {
	local p50 bad
	read -r RPS p50 P99 bad REQS < <(run "http://127.0.0.1:$3/q/market-07")
	printf "%-6s %-22s %10s %9s %9s %8s\n" "$1" "$2" "$RPS" "$p50" "$P99" "$bad"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
mean() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (a+b)/2}'; }
# Visits a hub counted (scans, rate-limited and bot visits) and dropped.
visits() {
	curl -fs "http://127.0.0.1:$1/metrics" | awk '
	/^villagehub_qr_(scans_total|rate_limited_visits_total|bot_visits_total)\{/ { s += $2 }
	/^villagehub_qr_scans_dropped_total/ { d += $2 }
	END { printf "%.0f %.0f\n", s, d }'
}

echo "bench-redirect: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -c$CONNS -d$DURATION, $PHONES phones"
printf "%-6s %-22s %10s %9s %9s %8s\n" round server req/s p50-ms p99-ms non-3xx
for r in $(seq "$ROUNDS"); do
	row "$r" "Go net/http bare 302" "$GPORT"
	g_rps=$RPS
	row "$r" "fasthttp bare 302" "$FPORT"
	f_p99=$P99
	for k in "${!HUBS[@]}"; do
		# The ceiling is measured right before and right after each hub
		# run (nginx, hub, nginx) and the hub is held to the mean of the
		# two: a shared VM's speed drifts over minutes, and a ceiling
		# taken a minute earlier measured a different machine. Both
		# nginx runs are printed; the ratios to each are on the summary
		# line.
		n0=$(cputicks "$NGINXPID")
		row "$r" "nginx 302 (before)" "$NPORT"
		b_rps=$RPS b_p99=$P99 b_cpu=$(per_item $(($(cputicks "$NGINXPID") - n0)) "$REQS")
		HPORT=${HPORTS[$k]}
		HUBPID=${HUBPIDS[$k]}
		name="villagehub /q/"
		[ ${#HUBS[@]} -eq 1 ] || name="hub$((k + 1)) $(basename "${HUBS[$k]}")"
		c0=$(cputicks "$HUBPID")
		read -r s0 d0 < <(visits "$HPORT")
		if [ -n "${PROFILE:-}" ]; then
			# A CPU profile of the hub during the run (go tool pprof -top).
			curl -fs -o "$PROFILE.$((k + 1)).$r" "http://127.0.0.1:$HPORT/debug/pprof/profile?seconds=$((${DURATION%s} - 3))" &
			profpid=$!
		fi
		row "$r" "$name" "$HPORT"
		h_rps=$RPS h_p99=$P99
		[ -z "${PROFILE:-}" ] || wait "$profpid" || echo "bench-redirect: no profile (is /debug/pprof on?)" >&2
		c1=$(cputicks "$HUBPID")
		read -r s1 d1 < <(visits "$HPORT")
		row "$r" "nginx 302 (after)" "$NPORT"
		a_rps=$RPS a_p99=$P99
		m_rps=$(mean "$b_rps" "$a_rps") m_p99=$(mean "$b_p99" "$a_p99")
		rate_ok=$(awk -v a="$h_rps" -v b="$m_rps" 'BEGIN{print (a >= 0.7*b) ? 1 : 0}')
		p99_ok=$(awk -v a="$h_p99" -v b="$m_p99" 'BEGIN{print (a <= 1.2*b) ? 1 : 0}')
		met_rate[$k]=$((${met_rate[$k]:-0} + rate_ok))
		met_p99[$k]=$((${met_p99[$k]:-0} + p99_ok))
		met_both[$k]=$((${met_both[$k]:-0} + (rate_ok & p99_ok)))
		echo "       rate $(ratio "$h_rps" "$m_rps")x nginx's mean (target >= 0.7; $(ratio "$h_rps" "$b_rps")/$(ratio "$h_rps" "$a_rps")x before/after), p99 $(ratio "$h_p99" "$m_p99")x nginx's mean (target <= 1.2; $(ratio "$h_p99" "$b_p99")/$(ratio "$h_p99" "$a_p99")x before/after)"
		echo "       $(ratio "$h_rps" "$g_rps")x Go bare's rate; fasthttp bare's p99 $(ratio "$f_p99" "$m_p99")x nginx's mean; visits counted $((s1 - s0)), dropped $((d1 - d0)), hub CPU $(per_item $((c1 - c0)) $((s1 - s0))) µs/visit (nginx before: $b_cpu µs/request)"
	done
done
# Over the rounds: how often each hub held the targets, each and both.
for k in "${!HUBS[@]}"; do
	echo "$(basename "${HUBS[$k]}"): rate >= 0.7x nginx in ${met_rate[$k]} of $ROUNDS rounds, p99 <= 1.2x nginx's in ${met_p99[$k]}, both in ${met_both[$k]}"
done
