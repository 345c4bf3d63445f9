#!/usr/bin/env bash
# Runs the seed's HA setup on one machine: two Prometheus replicas scraping the same
# targets, a vigil sidecar beside each, and vigil query deduplicating them. Ctrl-C stops
# everything. Needs bin/vigil (make build) and Debian's prometheus package.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${VIGIL_QUICKSTART_DIR:-/tmp/vigil-quickstart}
vigil=${VIGIL_BIN:-./bin/vigil}
[ -x "$vigil" ] || { echo "build Vigil first: make build" >&2; exit 1; }
command -v prometheus >/dev/null || ./scripts/install-test-deps.sh
mkdir -p "$dir"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

targets="'127.0.0.1:9090', '127.0.0.1:9091'"
if command -v prometheus-node-exporter >/dev/null; then
  prometheus-node-exporter --web.listen-address=127.0.0.1:9100 --no-collector.systemd >"$dir/node-exporter.log" 2>&1 &
  pids+=($!)
  targets="$targets, '127.0.0.1:9100'"
fi

for i in 0 1; do
  mkdir -p "$dir/prometheus-$i"
  cat >"$dir/prometheus-$i/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
  external_labels: {cluster: quickstart, replica: prometheus-$i}
scrape_configs:
  - job_name: demo
    static_configs: [{targets: [$targets]}]
YAML
  prometheus --config.file="$dir/prometheus-$i/prometheus.yml" --storage.tsdb.path="$dir/prometheus-$i/data" \
    --web.listen-address=127.0.0.1:909$i --web.enable-lifecycle \
    --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h \
    >"$dir/prometheus-$i.log" 2>&1 &
  pids+=($!)
  "$vigil" sidecar --prometheus.url=http://127.0.0.1:909$i --tsdb.path="$dir/prometheus-$i/data" \
    --grpc-address=127.0.0.1:109${i}1 --http-address=127.0.0.1:109${i}2 >"$dir/sidecar-$i.log" 2>&1 &
  pids+=($!)
done

"$vigil" query --query.replica-label=replica \
  --store=127.0.0.1:10901 --store=127.0.0.1:10911 \
  --grpc-address=127.0.0.1:10903 --http-address=127.0.0.1:10904 >"$dir/query.log" 2>&1 &
pids+=($!)

until curl -sf http://127.0.0.1:10904/-/ready >/dev/null; do sleep 0.2; done
cat <<MSG
Vigil quickstart is running (logs in $dir):
  Prometheus replicas  http://127.0.0.1:9090  http://127.0.0.1:9091
  vigil sidecars       gRPC 127.0.0.1:10901, 127.0.0.1:10911
  vigil query          http://127.0.0.1:10904  (point Grafana's Prometheus data source here)
Try:
  curl -s 'http://127.0.0.1:10904/api/v1/query?query=up'              # one series per target
  curl -s 'http://127.0.0.1:10904/api/v1/query?query=up&dedup=false'  # one per replica
  curl -s 'http://127.0.0.1:10904/api/v1/stores'
Press Ctrl-C to stop.
MSG
wait
