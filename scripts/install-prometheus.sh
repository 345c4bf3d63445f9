#!/usr/bin/env bash
# Makes sure `vigil up` finds a Prometheus: when none is on PATH, builds Prometheus from the
# Go module proxy into this clone's bin/ (no system-wide change; a few minutes the first time,
# then reused). Its web UI is left out (it needs a Node.js build); its API, which is all
# `vigil up` uses, is complete.
set -euo pipefail
cd "$(dirname "$0")/.."

PROMETHEUS_MODULE_VERSION=v0.316.0 # Prometheus 3.16.0
PROMETHEUS_VERSION=3.16.0
if command -v prometheus >/dev/null; then
  exit 0
fi
if [ -x bin/prometheus ]; then
  exit 0
fi
echo "no prometheus on PATH: building Prometheus $PROMETHEUS_VERSION into bin/ (one-off, a few minutes)..."
GOBIN="$PWD/bin" go install \
  -ldflags "-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION"
bin/prometheus --version 2>&1 | sed -n 1p
