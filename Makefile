# Vigil build, code generation and tests.
GO        ?= go
BIN       := bin
PROTO_OUT := internal/storeapi

.PHONY: all build up proto test test-unit test-fuzz test-e2e deps bench lint ui ui-check

all: build

# Build information, as Prometheus' release builds stamp it (vigil --version, vigil_build_info).
VERSION    ?= 0.1.0-dev
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
BUILD_USER ?= $(shell id -un)@$(shell uname -n)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
VPKG       := github.com/prometheus/common/version
LDFLAGS    := -X main.vigilVersion=$(VERSION) -X $(VPKG).Revision=$(REVISION) -X $(VPKG).Branch=$(BRANCH) \
	-X $(VPKG).BuildUser=$(BUILD_USER) -X $(VPKG).BuildDate=$(BUILD_DATE)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/vigil ./cmd/vigil

# Runs the whole system on this machine (see docs/components/up.md). When no Prometheus is
# installed, one is built from source into bin/ first. Extra flags: make up UP_ARGS='...'.
up: build
	./scripts/install-prometheus.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/vigil up $(UP_ARGS)

# Regenerates the StoreAPI Go code from proto/ (needs protoc and libprotobuf-dev).
proto:
	mkdir -p $(PROTO_OUT)
	GOBIN=$(CURDIR)/$(BIN) $(GO) install tool
	PATH=$(CURDIR)/$(BIN):$$PATH protoc -I proto -I /usr/include \
	  --go_out=$(PROTO_OUT) --go_opt=module=github.com/vigilhq/vigil/internal/storeapi \
	  --go-grpc_out=$(PROTO_OUT) --go-grpc_opt=module=github.com/vigilhq/vigil/internal/storeapi \
	  proto/storepb/types.proto proto/storepb/rpc.proto proto/infopb/rpc.proto proto/rulespb/rpc.proto \
	  proto/metadatapb/rpc.proto proto/targetspb/rpc.proto proto/exemplarspb/rpc.proto proto/statuspb/rpc.proto

# Installs what the tests need on a fresh Debian machine, then runs unit and e2e tests.
test: deps ui-check test-unit test-fuzz test-e2e

deps:
	./scripts/install-test-deps.sh

# Seek methods of chunkenc iterators take seek.Millis so that the full vet passes.
VET := $(GO) vet

test-unit:
	$(VET) ./...
	$(GO) test -count=1 ./internal/... ./cmd/...

# Each fuzz target runs for FUZZ_TIME beyond its seed corpus (which test-unit runs).
FUZZ_TIME ?= 5s
FUZZ := internal/receive:FuzzDecodeRemoteWriteV1 internal/receive:FuzzDecodeRemoteWriteV2 \
	internal/receive:FuzzOTLPHandler internal/storeapi/writepb:FuzzWritepbUnmarshal \
	internal/storeapi/storepb:FuzzUnmarshalFast internal/block:FuzzDecodeMeta \
	internal/queryapi:FuzzQueryAPI internal/tsdbstore:FuzzSeriesRequest internal/bucketstore:FuzzIndexHeader \
	internal/xorchunk:FuzzAppend

test-fuzz:
	@for f in $(FUZZ); do \
	  pkg=$${f%%:*}; fn=$${f##*:}; \
	  echo "fuzz $$fn ($$pkg, $(FUZZ_TIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZ_TIME) ./$$pkg || exit 1; \
	done

# VIGIL_E2E_REQUIRE=1: a missing Prometheus, MinIO, etcd... fails the run instead of skipping.
test-e2e: build
	VIGIL_E2E_REQUIRE=1 VIGIL_BIN=$(CURDIR)/$(BIN)/vigil $(GO) test -count=1 -timeout 20m ./test/e2e/...

# Rebuilds the web UI (web/ui, needs Node.js and npm) into internal/web/static, whose
# files are committed and embedded: `go build` needs no Node.js.
ui:
	cd web/ui && npm ci --no-audit --no-fund && npm run build
	rm -rf internal/web/static
	cp -r web/ui/dist internal/web/static

# Fails if the committed UI assets are not what `make ui` builds from web/ui.
ui-check: ui
	@git status --porcelain -- internal/web/static | grep . && \
	  { echo "internal/web/static is stale: run 'make ui' and commit the result"; exit 1; } || true

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...
