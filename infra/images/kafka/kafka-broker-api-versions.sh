#!/bin/bash
# The health check docker-compose.yml runs in either Kafka image. The official image has Kafka's
# own tool at this path; this image carries no Kafka tools, so this sends the same ApiVersions
# request (v0, correlation id 1) with bash alone and is healthy when the broker answers it
# without error: then it is processing requests, not merely listening.
# Usage: kafka-broker-api-versions.sh --bootstrap-server HOST:PORT
set -euo pipefail
server=${2:-localhost:9092}
exec 3<>"/dev/tcp/${server%:*}/${server##*:}"
# size 12 | api_key 18 | api_version 0 | correlation_id 1 | client_id "hc"
printf '\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x02hc' >&3
# size (4 bytes) | correlation_id (4) | error_code (2)
answer=$(head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
exec 3>&-
[[ $answer == ????????000000010000 ]] || { echo "no ApiVersions answer from $server" >&2; exit 1; }
echo "$server answers ApiVersions"
