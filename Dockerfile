# syntax=docker/dockerfile:1
#
# The vigil image: one static binary on a distroless base, running as a non-root user.
#
#   docker build -t vigil:latest \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg BRANCH=$(git rev-parse --abbrev-ref HEAD) \
#     --build-arg BUILD_DATE=$(date -u +%Y%m%d-%H:%M:%S) .
#
# The build arguments end up in `vigil --version` and the vigil_build_info metric.

ARG GO_VERSION=1.26.8

# The builder runs on the build machine's platform and cross-compiles for the target one.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
# Docker also exports these to the build's environment, where the Makefile's ?= defaults would
# take them even when empty: every one is passed, and BUILD_DATE defaults to now.
ARG VERSION=0.1.0-dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_DATE=
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} make build \
      VERSION="${VERSION}" REVISION="${REVISION}" BRANCH="${BRANCH}" \
      BUILD_DATE="${BUILD_DATE:-$(date -u +%Y%m%d-%H:%M:%S)}" BUILD_USER=docker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/vigil /bin/vigil
# nonroot (65532:65532), given by number so that Kubernetes can check runAsNonRoot.
USER 65532:65532
# gRPC (StoreAPI) and HTTP (API, UI, metrics, probes).
EXPOSE 10901 10902
ENTRYPOINT ["/bin/vigil"]
