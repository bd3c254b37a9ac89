#!/usr/bin/env bash
# Builds every image docker-compose.yml + infra/compose/local-images.yml run, with no image
# registry: only Debian's mirror, PyPI, Maven Central and the Go module proxy.
#   localhost/debian:bookworm            debootstrap (infra/images/debian/make-base.sh)
#   localhost/vidloc:latest              ./Dockerfile on that base (product packages only)
#   localhost/vidloc-kafka:<version>     infra/images/kafka, jars from infra/kafka/pom.xml
#   localhost/vidloc-versitygw:<version> infra/images/versitygw, `go install` at the stack's pin
# Unchanged inputs rebuild from podman's layer cache and the jar/binary stamps in
# .cache/compose. Run from the repository root, as root (podman rootful).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/debian:bookworm}
CACHE=${COMPOSE_CACHE:-$(pwd)/.cache/compose}
export COMPOSE_CACHE=$CACHE BASE_IMAGE
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' infra/kafka/pom.xml)
VERSITYGW_VERSION=$(sed -n 's/^VERSITYGW_VERSION = "\(.*\)"$/\1/p' devkit/stack/s3.py)
VERSITYGW_MODULE=github.com/versity/versitygw/cmd/versitygw
# A TLS-intercepting proxy's CA, lent to pip as a build secret (never stored in the image).
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

say() { printf 'build-images: %s\n' "$*"; }
need() {
    command -v "$1" >/dev/null 2>&1 || { say "$1 not found: $2"; exit 1; }
}
timed() {  # timed LABEL CMD...: runs CMD, prints its wall time
    local start=$SECONDS
    "${@:2}"
    say "$1: $((SECONDS - start)) s"
}
build() {  # build TAG CONTEXT [podman build args...]
    local tag=$1 context=$2
    shift 2
    nice -n 19 podman build --quiet --layers --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$tag" "$@" "$context" >/dev/null
}

need podman "run scripts/compose-test.sh, or apt-get install podman runc (see docs/deploy.md)"
need mvn "the Kafka jars are fetched with Maven (apt-get install maven)"
need go "versitygw is built with Go 1.25+ (go.dev; Debian bookworm's golang is too old)"
[ -n "$KAFKA_VERSION" ] && [ -n "$VERSITYGW_VERSION" ] || { say "cannot read the pinned versions"; exit 1; }
mkdir -p "$CACHE"

timed "base image $BASE_IMAGE" infra/images/debian/make-base.sh

# Kafka: the jars of infra/kafka/pom.xml, fetched again only when the pom changes.
kafka_ctx=$CACHE/kafka
stage_kafka() {
    local stamp=$kafka_ctx/libs/.pom-sha256 sum
    sum=$(sha256sum infra/kafka/pom.xml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
        rm -rf "$kafka_ctx/libs"
        nice -n 19 mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies \
            -DoutputDirectory="$kafka_ctx/libs"
        echo "$sum" >"$stamp"
    fi
    cp infra/kafka/log4j2.xml infra/images/kafka/*.sh "$kafka_ctx/"
    # Build the image from the file content, not the copy's timestamps.
    touch -d @0 "$kafka_ctx"/log4j2.xml "$kafka_ctx"/*.sh
}
timed "kafka jars" stage_kafka
timed "image localhost/vidloc-kafka:$KAFKA_VERSION" \
    build "localhost/vidloc-kafka:$KAFKA_VERSION" "$kafka_ctx" -f infra/images/kafka/Containerfile

# versitygw: static, so it needs nothing from the base image's libc.
gw_ctx=$CACHE/versitygw
stage_versitygw() {
    if [ "$(cat "$gw_ctx/VERSION" 2>/dev/null)" != "$VERSITYGW_VERSION" ]; then
        mkdir -p "$gw_ctx"
        # The local stack's module and build caches (devkit/stack/s3.py), so this rarely downloads.
        CGO_ENABLED=0 GOBIN=$gw_ctx GOFLAGS=-buildvcs=false \
            GOMODCACHE=${GOMODCACHE:-$HOME/.cache/go-mod} GOCACHE=${GOCACHE:-$HOME/.cache/go-build} \
            nice -n 19 go install -ldflags="-s -w" "$VERSITYGW_MODULE@$VERSITYGW_VERSION"
        echo "$VERSITYGW_VERSION" >"$gw_ctx/VERSION"
    fi
}
timed "versitygw $VERSITYGW_VERSION binary" stage_versitygw
timed "image localhost/vidloc-versitygw:$VERSITYGW_VERSION" \
    build "localhost/vidloc-versitygw:$VERSITYGW_VERSION" "$gw_ctx" \
    -f infra/images/versitygw/Containerfile

secret=()
[ -s "$CA_BUNDLE" ] && secret=(--secret "id=ca,src=$CA_BUNDLE")
timed "image localhost/vidloc:latest" build localhost/vidloc:latest . -f Dockerfile "${secret[@]}"

for image in "$BASE_IMAGE" "localhost/vidloc-kafka:$KAFKA_VERSION" \
    "localhost/vidloc-versitygw:$VERSITYGW_VERSION" localhost/vidloc:latest; do
    say "size $image: $(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=si)B"
done
