#!/bin/bash
# One Kafka node, configured as the official apache/kafka image is: every KAFKA_* variable is a
# server property (KAFKA_LOG_DIRS -> log.dirs; "___" -> "-", "__" -> "_", "_" -> "."), except the
# JVM ones (KAFKA_HEAP_OPTS, KAFKA_OPTS, ...). The log dir is formatted on first start only, with
# CLUSTER_ID, so a restart keeps the data. exec: SIGTERM reaches the broker, which shuts down cleanly.
set -euo pipefail

CONFIG=/opt/kafka/config/server.properties
CLASSPATH="/opt/kafka/libs/*"
# The official image's default id, so a volume moves between the two images.
CLUSTER_ID=${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}
HEAP=${KAFKA_HEAP_OPTS:--Xmx384m -Xms128m}

: >"$CONFIG"
while IFS='=' read -r name _; do
    case "$name" in
        KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_LOG4J_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_JMX_OPTS) continue ;;
        KAFKA_*) ;;
        *) continue ;;
    esac
    key=$(printf '%s' "${name#KAFKA_}" | tr '[:upper:]' '[:lower:]' \
        | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
    printf '%s=%s\n' "$key" "${!name}" >>"$CONFIG"
done < <(env)
grep -q '^log.dirs=' "$CONFIG" || echo "log.dirs=/var/lib/kafka/data" >>"$CONFIG"
log_dirs=$(sed -n 's/^log.dirs=//p' "$CONFIG")

if [ ! -f "${log_dirs%%,*}/meta.properties" ]; then
    java -Dlog4j2.configurationFile=/opt/kafka/log4j2.xml -cp "$CLASSPATH" \
        kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" -c "$CONFIG"
fi

# shellcheck disable=SC2086  # the heap options are words
exec java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile=/opt/kafka/log4j2.xml ${KAFKA_OPTS:-} \
    -cp "$CLASSPATH" kafka.Kafka "$CONFIG"
