# Shared by the bench-*.sh scripts (sourced, not run): a temporary
# directory removed at exit with every process the script started, and
# free loopback ports.
#
#   cd "$(dirname "$0")/.."; . scripts/bench-lib.sh; bench_setup NAME
#   pids+=($!)          # a background process to stop at exit (jobs are too)
#   port=$(freeport); waitport "$port"
#   t0=$(cputicks "$pid"); ...; per_item $(($(cputicks "$pid") - t0)) "$n"

bench_setup() {
	tmp=$(mktemp -d "/tmp/$1.XXXXXX")
	bench_name=$1
	pids=()
	trap bench_cleanup EXIT
}

bench_cleanup() {
	for p in "${pids[@]}" $(jobs -p); do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# waitport waits up to 10 s for something to listen on 127.0.0.1:$1.
waitport() {
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "$bench_name: nothing listening on $1" >&2
	return 1
}

# CPU a process has used (utime+stime from /proc), in clock ticks
# (cputicks) or seconds (cpusecs); childcpusecs: that of its reaped
# children. Ticks are the machine's CLK_TCK, not an assumed 100.
HZ=$(getconf CLK_TCK)
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpusecs() { awk -v hz="$HZ" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"; }
childcpusecs() { awk -v hz="$HZ" '{ printf "%.2f\n", ($16 + $17) / hz }' "/proc/$1/stat"; }
# per_item TICKS N: µs of CPU per item, or - without items.
per_item() { awk -v c="$1" -v n="$2" -v hz="$HZ" 'BEGIN{ if (n > 0) printf "%.1f", c*1e6/hz/n; else print "-" }'; }
