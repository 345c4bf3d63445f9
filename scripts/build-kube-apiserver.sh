#!/usr/bin/env bash
# Builds a real kube-apiserver from the Go module proxy into $(go env GOPATH)/bin, for the tests
# that validate deploy/kubernetes with a server-side dry run and exercise Lease leader election.
# Kubernetes cannot be `go install`ed (its go.mod has replace directives), so a throw-away wrapper
# module pins its staging modules. About 9 minutes on 2 cores the first time; later runs reuse
# the binary. Idempotent.
set -euo pipefail

K8S_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
gobin=$(go env GOPATH)/bin
out="$gobin/kube-apiserver-$K8S_VERSION"
if [ -x "$out" ]; then
  echo "kube-apiserver $K8S_VERSION: $out"
  exit 0
fi

echo "building kube-apiserver $K8S_VERSION (one-off, about 9 minutes)..."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mod=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$mod" ] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
{
  echo 'module kas'
  echo 'go 1.26'
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo 'replace ('
  grep -E '=> \./staging' "$mod" | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
  echo ')'
} >"$work/go.mod"
printf 'package main\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\nfunc main() {}\n' >"$work/tools.go"
(
  cd "$work"
  go mod tidy
  go build -ldflags "-X k8s.io/component-base/version.gitVersion=$K8S_VERSION" \
    -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
)
mv "$out.tmp" "$out"
echo "kube-apiserver $K8S_VERSION: $out"
