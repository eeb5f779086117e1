# syntax=docker/dockerfile:1

# Build: a static binary (modernc.org/sqlite is pure Go, so CGO is off).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/msspbot ./cmd/msspbot
# The data directory must exist, owned by the runtime user, before VOLUME:
# a new named volume copies its ownership.
RUN mkdir -p /out/var/lib/msspbot /out/etc/msspbot

# Run: distroless static (CA certificates, tzdata, /etc/passwd with nonroot),
# no shell, user 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/msspbot /msspbot
COPY --from=build --chown=65532:65532 /out/var/lib/msspbot /var/lib/msspbot
COPY --from=build /out/etc/msspbot /etc/msspbot
USER 65532:65532
VOLUME /var/lib/msspbot
ENV MSSPBOT_CONFIG=/etc/msspbot/config.yaml
EXPOSE 8080
ENTRYPOINT ["/msspbot"]
CMD ["serve"]
