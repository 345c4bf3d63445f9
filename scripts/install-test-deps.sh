#!/usr/bin/env bash
# Installs what Vigil's tests need on a fresh Debian machine: real Prometheus, promtool,
# Alertmanager, node exporter and etcd from Debian, protoc for `make proto`, MinIO and a
# kube-apiserver built from source. Idempotent:
# anything already present is left alone.
set -euo pipefail

# apt_install installs Debian packages without letting them start services on the machine
# (tests start their own on loopback ports): while it runs, a policy-rc.d denies every
# service start. The file is removed afterwards unless it was there before, so no
# system-wide change outlives the install.
apt_install() {
  local SUDO="" made=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made=1
  fi
  local rc=0
  { $SUDO apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@"; } || rc=$?
  [ -z "$made" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  return $rc
}

# version prints the first line of a tool's --version. sed reads the whole output, so a tool
# writing more than one line never dies of SIGPIPE (which pipefail would turn into a failure).
version() { "$@" --version 2>&1 | sed -n 1p; }

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v protoc >/dev/null || need+=(protobuf-compiler libprotobuf-dev)
command -v etcd >/dev/null || need+=(etcd-server)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

version prometheus

# MinIO, the real S3 server the object-storage tests run against. Built from source with
# the Go toolchain (no prebuilt download); pinned so every machine tests the same server.
# The first build takes several minutes on 2 cores; later runs reuse the binary.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/minio" ]; then
  echo "building MinIO $MINIO_VERSION (one-off, several minutes)..."
  go install "github.com/minio/minio@$MINIO_VERSION"
fi
version "$gobin/minio"

# --- Web UI browser test (test/e2e/ui_test.go) -------------------------------------------
# Headless Chromium from Debian; playwright-core (test/e2e/ui/package-lock.json) drives it
# and is installed by the test itself with `npm ci` (it downloads no browser). Idempotent.
command -v chromium >/dev/null || apt_install chromium
chromium --version 2>/dev/null | sed -n 1p

# --- kube-apiserver (test/e2e/kube_*): validates deploy/kubernetes with server-side dry
# runs and backs the Lease leader-election tests, with Debian's etcd as its store.
version etcd
"$(dirname "$0")/build-kube-apiserver.sh"
