#!/usr/bin/env bash
# Builds the Thanos release the benchmarks under bench/ compare Vigil against, from the Go
# module proxy, into $(go env GOPATH)/bin/thanos-$THANOS_VERSION. Thanos cannot be
# `go install`ed (its go.mod has replace directives), so a throw-away wrapper module copies
# them. For side-by-side measurements only: Vigil does not import Thanos. A few minutes the
# first time; later runs reuse the binary.
set -euo pipefail

THANOS_VERSION=${THANOS_VERSION:-v0.42.4}
out="$(go env GOPATH)/bin/thanos-$THANOS_VERSION"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mod=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/thanos-io/thanos@$THANOS_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$mod" ] || { echo "cannot download github.com/thanos-io/thanos@$THANOS_VERSION" >&2; exit 1; }
{
  echo 'module thanosbuild'
  echo 'go 1.26'
  sed -n '/^replace (/,/^)/p' "$mod"
} >"$work/go.mod"
(
  cd "$work"
  go get "github.com/thanos-io/thanos/cmd/thanos@$THANOS_VERSION" >&2
  # The tags of Thanos's release builds: without slicelabels its querier and sidecar panic
  # on the label encoding of the Prometheus version it builds against.
  go build -tags netgo,slicelabels -o "$out.tmp" github.com/thanos-io/thanos/cmd/thanos
)
mv "$out.tmp" "$out"
echo "$out"
