#!/usr/bin/env bash
# Installs what the tests need and the machine lacks: Debian packages of the
# real servers and tools the tests run (Mosquitto, Prometheus, Alertmanager,
# Chromium, ffmpeg, poppler, GStreamer's RTSP server, nginx in front of the
# QR gateway, qemu-user for the arm64 build, iproute2/util-linux for the
# network namespaces of the WS-Discovery tests, wrk for the benchmark
# scripts), and a real InfluxDB 1.8 and VictoriaMetrics built once and
# cached.
# Idempotent: a second run installs nothing and takes well under a second.
set -euo pipefail

pkgs=(mosquitto mosquitto-clients prometheus prometheus-alertmanager chromium ffmpeg poppler-utils openssl qemu-user iproute2 util-linux nginx-light wrk)
# A real third-party RTSP server for hub/probe's tests: GStreamer's
# gst-rtsp-server through PyGObject (hub/testenv/gstreamer.go).
pkgs+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

here="$(cd "$(dirname "$0")" && pwd)"
if [ -x "$here/install-influxd.sh" ]; then
  "$here/install-influxd.sh"
fi

# VictoriaMetrics single node (hub/testenv.StartVictoriaMetrics), built once
# into $(go env GOPATH)/bin: a few minutes cold, then cached.
vm="${VILLAGEHUB_VICTORIA_METRICS:-$(go env GOPATH | cut -d: -f1)/bin/victoria-metrics}"
if ! { [ -x "$vm" ] && go version -m "$vm" 2>/dev/null | grep -q "github.com/VictoriaMetrics/VictoriaMetrics[[:space:]]*v1.151.0"; }; then
  echo "building victoria-metrics v1.151.0 into $vm (a few minutes, once)..."
  tmp="$(mktemp -d)"
  (cd "$tmp" && GOFLAGS= GOBIN="$tmp" CGO_ENABLED=0 go install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@v1.151.0)
  mkdir -p "$(dirname "$vm")"
  mv "$tmp/victoria-metrics" "$vm"
  rm -rf "$tmp"
fi
