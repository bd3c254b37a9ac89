#!/usr/bin/env bash
# Makes localhost/debian:bookworm, the base of every vidloc image, without any image registry:
# debootstrap (minbase) from the Debian mirror this machine's apt already uses, imported into
# podman. Equivalent to Docker Hub's debian:bookworm-slim. Needs root. Idempotent: does nothing
# when the image exists (pass --force to remake it).
set -euo pipefail

IMAGE=${BASE_IMAGE:-localhost/debian:bookworm}
SUITE=bookworm
WORK=${COMPOSE_CACHE:-$(pwd)/.cache/compose}/rootfs

if [ "${1:-}" != "--force" ] && podman image exists "$IMAGE"; then
    echo "base: $IMAGE exists"
    exit 0
fi

# The mirror apt is configured with (deb822 or one-line sources), else deb.debian.org.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -oE 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
security=${mirror%/debian}/debian-security

rm -rf "$WORK"
mkdir -p "$(dirname "$WORK")"
echo "base: debootstrap --variant=minbase $SUITE from $mirror"
nice -n 19 debootstrap --variant=minbase "$SUITE" "$WORK" "$mirror" >"$WORK.log" 2>&1 \
    || { tail -n 20 "$WORK.log"; exit 1; }
# Point-release and security updates too, as debian:bookworm-slim has them.
cat >"$WORK/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
SOURCES
# What debootstrap downloaded is not part of the system; images run apt-get update themselves.
rm -rf "$WORK"/var/cache/apt/archives/*.deb "$WORK"/var/lib/apt/lists/* "$WORK"/var/log/*.log
tar -C "$WORK" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
rm -rf "$WORK" "$WORK.log"
echo "base: imported $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
