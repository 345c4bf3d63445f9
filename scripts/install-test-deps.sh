#!/usr/bin/env bash
# Installs what Vigil's tests need on a fresh Debian machine: real Prometheus, promtool,
# Alertmanager and node exporter from Debian, and protoc for `make proto`. Idempotent:
# anything already present is left alone.
set -euo pipefail

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v protoc >/dev/null || need+=(protobuf-compiler libprotobuf-dev)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Package installs must not start services on the machine (tests start their own on
  # loopback ports): a policy-rc.d that denies every start.
  if [ ! -x /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

prometheus --version 2>&1 | head -1

# MinIO, the real S3 server the object-storage tests run against. Built from source with
# the Go toolchain (no prebuilt download); pinned so every machine tests the same server.
# The first build takes several minutes on 2 cores; later runs reuse the binary.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/minio" ]; then
  echo "building MinIO $MINIO_VERSION (one-off, several minutes)..."
  go install "github.com/minio/minio@$MINIO_VERSION"
fi
"$gobin/minio" --version 2>&1 | head -1

# --- Web UI browser test (test/e2e/ui_test.go) -------------------------------------------
# Headless Chromium from Debian; playwright-core (test/e2e/ui/package-lock.json) drives it
# and is installed by the test itself with `npm ci` (it downloads no browser). Idempotent.
if ! command -v chromium >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
fi
chromium --version 2>/dev/null | head -1
