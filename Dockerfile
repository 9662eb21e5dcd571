# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
FROM golang:1.26-bookworm AS build

WORKDIR /src

# Download modules in their own layer so it is reused as long as go.mod and
# go.sum do not change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

# Declared after the download step so changing them does not bust its cache.
ARG VERSION=dev
ARG COMMIT=unknown

COPY . .

# Pure Go (SQLite via modernc.org/sqlite), so a static binary without cgo.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/keyplane . \
 && mkdir -p /out/app/data /out/var-lib-keyplane

# ---------------------------------------------------------------------------
# Runtime stage: no shell, no package manager, CA certificates, user 65532.
# ---------------------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
ARG COMMIT=unknown

LABEL org.opencontainers.image.title="keyplane" \
      org.opencontainers.image.description="keyplane GraphQL API server" \
      org.opencontainers.image.source="https://github.com/keyplane/keyplane" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"

COPY --from=build /out/keyplane /usr/local/bin/keyplane

# /app and /app/data owned by nonroot, so the default SQLite database
# (sqlite:data/keyplane.db, relative to the working directory) is writable
# when no DATABASE_URL is given. Mount a volume on /app/data to keep it.
# (Distroless has no mkdir, hence the directory made in the build stage.)
COPY --from=build --chown=65532:65532 /out/app /app
# /var/lib/keyplane owned by nonroot too, for KEYPLANE_BOOTSTRAP_KEY_FILE:
# a named volume mounted there starts with this owner, so the first start
# can write the first admin key into it (mode 0600).
COPY --from=build --chown=65532:65532 /out/var-lib-keyplane /var/lib/keyplane
WORKDIR /app

USER 65532:65532

ENV LISTEN_ADDR=:8080
EXPOSE 8080

# No shell or curl here: the binary checks itself. `keyplane healthcheck`
# GETs /readyz on LISTEN_ADDR's port and exits 0 on 200, 1 otherwise, so
# the container is healthy while it can serve: up, and reaching its
# database. (Kubernetes ignores HEALTHCHECK: give it httpGet probes, liveness
# on /healthz and readiness on /readyz.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/keyplane", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/keyplane"]
CMD ["serve"]
