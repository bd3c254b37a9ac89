#!/usr/bin/env bash
# `make compose-test`: the compose deployment for real, on this machine, with podman.
#  1. installs podman, runc, podman-compose and debootstrap if missing (Debian; root) and sets
#     the runtime podman needs here (runc; crun fails on hybrid cgroups);
#  2. builds every image with no image registry (infra/compose/build-images.sh; cached);
#  3. brings the deployment up under project vidloc-compose-test, on host ports that leave the
#     dev stack alone (Kafka 19094, S3 19000, API 18080), with a fresh API keys file;
#  4. from the host: a clip into the bucket, its result from Kafka, its timeline from the API;
#     the webhook deliverer up and serving its metrics;
#     a key added and then revoked on the host is accepted, then refused, by the running API
#     within seconds; down/up keeps the result, the timeline and the revocation; 3 workers share
#     the ingest partitions; a worker killed mid-job still gives exactly one result;
#  5. with CLUSTER=1, all that on the `cluster` profile (three Kafka nodes, replication 3,
#     min.insync.replicas 2), and then a broker SIGKILLed mid-job and started again past the
#     session timeout: still exactly one result;
#  6. tears down, volumes included (KEEP=1 leaves it running).
# Prints the time of every phase. Run from anywhere; needs root and the dev venv (make setup).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-vidloc-compose-test}
export KAFKA_HOST_PORT=${KAFKA_HOST_PORT:-19094}
export S3_HOST_PORT=${S3_HOST_PORT:-19000}
export API_HOST_PORT=${API_HOST_PORT:-18080}
CACHE=$ROOT/.cache/compose
RUN_DIR=$CACHE/test
PY=$ROOT/.venv/bin/python
SERVICES=(kafka s3 init bridge worker api deliverer) # podman-compose 1.0.3 ignores profiles: name them
if [ "${CLUSTER:-0}" = 1 ]; then
    export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME}-cluster
    export KAFKA_2_HOST_PORT=${KAFKA_2_HOST_PORT:-19095} KAFKA_3_HOST_PORT=${KAFKA_3_HOST_PORT:-19096}
    set -a
    # shellcheck source=../infra/compose/cluster.env
    . infra/compose/cluster.env
    set +a
    SERVICES=(kafka kafka-2 kafka-3 s3 init bridge worker api deliverer)
fi
TOTAL_START=$SECONDS

say() { printf '\ncompose-test: %s\n' "$*"; }
phase() { say "$1: $(($SECONDS - $2)) s"; }

[ "$(id -u)" -eq 0 ] || { echo "compose-test: run as root (podman rootful, apt-get)" >&2; exit 1; }
[ -x "$PY" ] || { echo "compose-test: no .venv: run make setup first" >&2; exit 1; }

# --- 1. podman ---------------------------------------------------------------------------
t=$SECONDS
missing=()
for tool in podman:podman runc:runc podman-compose:podman-compose debootstrap:debootstrap; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -f /etc/containers/containers.conf ]; then
    mkdir -p /etc/containers
    cat >/etc/containers/containers.conf <<'CONF'
# Written by vidloc's scripts/compose-test.sh: the default runtime crun fails on these
# machines ("cgroups in hybrid mode not supported", setrlimit refused); runc works.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
CONF
fi
runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}')
if [ "$runtime" != runc ]; then
    echo "compose-test: podman uses $runtime; set runtime = \"runc\" under [engine] and" \
        "default_ulimits = [] under [containers] in /etc/containers/containers.conf" >&2
    exit 1
fi
phase "podman ready ($(podman --version), podman-compose $(dpkg-query -W -f '${Version}' podman-compose))" $t

# --- 2. images ---------------------------------------------------------------------------
t=$SECONDS
infra/compose/build-images.sh
phase "images built" $t
set -a
# shellcheck source=../infra/compose/local-images.env
. infra/compose/local-images.env
set +a

# --- 3. up -------------------------------------------------------------------------------
compose() {
    podman-compose -p "$COMPOSE_PROJECT_NAME" -f docker-compose.yml "$@" >>"$RUN_DIR/compose.log" 2>&1
}
down() {
    # podman-compose 1.0.3 ignores stop_grace_period and stops with -t 1 unless told: give
    # Kafka a clean shutdown and a worker the time to hand its job back.
    compose down -t 60 "$@" || true
    # podman-compose 1.0.3 only removes the replicas the compose file names: the third worker
    # started from the scale override would outlive `down`.
    podman ps -a -q --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" \
        | xargs -r podman rm -f -t 10 >/dev/null 2>&1 || true
}
logs_on_failure() {
    local rc=$?
    if [ $rc -ne 0 ]; then
        say "FAILED (exit $rc); container states and log tails follow"
        podman ps -a --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" \
            --format '{{.Names}} {{.Status}}' || true
        for name in $(podman ps -a --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" --format '{{.Names}}'); do
            echo "==> $name <=="
            podman logs --tail 15 "$name" 2>&1 || true
        done
    fi
    if [ "${KEEP:-0}" != 1 ]; then
        down -v
        podman volume ls -q --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" \
            | xargs -r podman volume rm >/dev/null 2>&1 || true
    fi
    exit $rc
}

mkdir -p "$RUN_DIR"
: >"$RUN_DIR/compose.log"
down -v # what an interrupted run left behind
trap logs_on_failure EXIT

# A fresh keys file with one read key, in the directory the API mounts; the API container's
# user (uid 10001) must read it. Later changes (as root, like this) keep that owner.
export API_KEYS_DIR=$RUN_DIR/api-keys
export E2E_KEYS_FILE=$API_KEYS_DIR/api-keys.json
rm -rf "$API_KEYS_DIR"
mkdir -p "$API_KEYS_DIR"
E2E_API_KEY=$(VIDLOC_API_KEYS_FILE=$E2E_KEYS_FILE .venv/bin/vidloc api keys add \
    --tenant compose --scopes read 2>/dev/null)
export E2E_API_KEY E2E_WORK=$RUN_DIR/media
chown 10001:10001 "$E2E_KEYS_FILE"

healthy() { # the compose file's own health check, run once (podman runs none by itself here)
    podman healthcheck run "${COMPOSE_PROJECT_NAME}_$1_1" >/dev/null 2>&1
}
wait_started() { # the one-shot init exited 0, and Kafka and the API pass their health checks
    local init_rc
    init_rc=$(podman wait "${COMPOSE_PROJECT_NAME}_init_1")
    [ "$init_rc" = 0 ] || { echo "init exited $init_rc" >&2; return 1; }
    healthy kafka || { echo "kafka fails its health check after init" >&2; return 1; }
    for _ in $(seq 1 120); do
        healthy api && return 0
        sleep 1
    done
    echo "the API never passed its health check" >&2
    return 1
}

t=$SECONDS
compose up -d "${SERVICES[@]}"
wait_started
phase "deployment up (init done, API answering)" $t
podman logs "${COMPOSE_PROJECT_NAME}_init_1" 2>&1 | grep -E '^(kafka|s3) ' || true

# --- 4. checks from the host -----------------------------------------------------------
t=$SECONDS
"$PY" tests/compose/e2e.py ingest short
phase "video -> result on Kafka -> timeline via the API" $t

# The webhook deliverer runs beside them and serves its metrics (no published port: asked
# from inside its container).
podman exec "${COMPOSE_PROJECT_NAME}_deliverer_1" python -c "
import urllib.request
body = urllib.request.urlopen('http://127.0.0.1:9401/metrics', timeout=10).read().decode()
assert 'vidloc_webhook_' in body, body[:500]
print('deliverer metrics:', sum(1 for line in body.splitlines() if line.startswith('vidloc_webhook_')), 'samples')
"

t=$SECONDS
"$PY" tests/compose/e2e.py revoke
phase "a key added, then revoked, on the running API" $t

t=$SECONDS
down
compose up -d "${SERVICES[@]}"
wait_started
phase "down + up with the volumes kept" $t
"$PY" tests/compose/e2e.py persisted short

t=$SECONDS
# podman-compose 1.0.3 ignores --scale; the replica count from an override file is what it
# reads (Docker Compose: `docker compose up -d --scale worker=3`).
printf 'services:\n  worker:\n    deploy:\n      replicas: 3\n' >"$RUN_DIR/workers-3.yml"
compose -f "$RUN_DIR/workers-3.yml" up -d worker
"$PY" tests/compose/e2e.py share 3
phase "scaled to 3 workers sharing the partitions" $t

t=$SECONDS
"$PY" tests/compose/e2e.py kill-mid-job long
phase "worker killed mid-job, job finished once" $t

if [ "${CLUSTER:-0}" = 1 ]; then
    t=$SECONDS
    "$PY" tests/compose/e2e.py kill-broker long-2
    phase "a broker killed mid-job and back, job finished once" $t
fi

# --- 5. down -----------------------------------------------------------------------------
t=$SECONDS
trap - EXIT
if [ "${KEEP:-0}" != 1 ]; then
    down -v
    phase "torn down (volumes removed)" $t
fi
for image in "$BASE_IMAGE" "$KAFKA_IMAGE" "$S3_IMAGE" localhost/vidloc:latest; do
    echo "  $image: $(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=si)B"
done
say "PASSED in $((SECONDS - TOTAL_START)) s"
