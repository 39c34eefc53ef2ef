# One image per binary, for users with Docker:
#   docker build --build-arg BINARY=cronhpa -t ghcr.io/lockstep-dev/cronhpa:0.1.0 .
# `make image` builds the same layout without a container engine (hack/image): the static binary
# at /app as the entrypoint, user 65532:65532, CA certificates, no shell.
FROM golang:1.26 AS build
ARG BINARY
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o /out/app ./cmd/${BINARY}

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/app /app
USER 65532:65532
ENTRYPOINT ["/app"]
