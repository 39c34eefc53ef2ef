# One image per binary: docker build --build-arg BINARY=cronhpa -t ghcr.io/lockstep-dev/cronhpa:0.1.0 .
# (No Docker engine runs on the project's CI machines; the chart test uses kwok pods instead.)
FROM golang:1.26 AS build
ARG BINARY
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app ./cmd/${BINARY}

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/app /app
USER 65532:65532
ENTRYPOINT ["/app"]
