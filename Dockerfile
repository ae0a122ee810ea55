# syntax=docker/dockerfile:1
#
# One image for every simlookup subcommand:
#
#   docker build -t simlookup:dev --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm simlookup:dev version
#   docker run --rm simlookup:dev worker --help
#
# Build stage: a static Go binary (no cgo), reproducible paths (-trimpath),
# stripped (-s -w), with the version stamped into internal/buildinfo.
# Cross-builds natively on the build host (docker buildx --platform linux/arm64).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src

# Dependencies first, so source edits do not re-download modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

ARG VERSION=dev
ARG COMMIT=unknown
# Set by BuildKit from --platform; no defaults here, or they would win over it.
ARG TARGETOS
ARG TARGETARCH
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/simlookup/simlookup/internal/buildinfo.Version=${VERSION} -X github.com/simlookup/simlookup/internal/buildinfo.Commit=${COMMIT}" \
      -o /out/simlookup ./cmd/simlookup

# /data is where the sink writes by default; created here so that a named
# volume mounted on it starts out owned by the non-root user.
RUN mkdir -p /out/data

# Final stage: distroless static (CA certificates, /etc/passwd with the
# "nonroot" user 65532, no shell, no package manager). Time zones are embedded
# in the binary (time/tzdata), so the image needs no tzdata.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="simlookup" \
      org.opencontainers.image.description="EIOTCLUB SIM card lookups from NATS JetStream to Parquet" \
      org.opencontainers.image.source="https://github.com/simlookup/simlookup"
COPY --from=build /out/simlookup /simlookup
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
# Metrics, /healthz and /readyz when a daemon runs with --http-addr :9090.
EXPOSE 9090
ENTRYPOINT ["/simlookup"]
CMD ["--help"]
