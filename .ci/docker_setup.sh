#!/usr/bin/env bash
# Make a Docker engine and a small Python image available for Wren's environment tests.
#
# Installs docker.io, debootstrap and bubblewrap from Debian (and apptainer/singularity-container
# when Debian has them), starts dockerd with the vfs storage driver and no bridge networking (this
# machine has no overlayfs-in-container or iptables), and builds WREN_TEST_IMAGE from a minimal
# debootstrap root with python3 and git. Safe to run again: each step is skipped when done.
set -euo pipefail

IMAGE="${WREN_TEST_IMAGE:-wren-test-python:bookworm}"
DOCKER_ROOT="${WREN_DOCKER_ROOT:-/var/lib/wren-docker}"
LOG="${WREN_DOCKERD_LOG:-/tmp/wren-dockerd.log}"
ROOTFS_CACHE="${WREN_ROOTFS_CACHE:-/var/cache/wren-rootfs}"
# python3-pytest so that fixture repositories' tests run inside the image as they do on the host.
PACKAGES="python3,python3-pytest,git"

log() { echo "docker_setup: $*" >&2; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v bwrap >/dev/null || need+=(bubblewrap)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v apptainer >/dev/null && ! command -v singularity >/dev/null; then
    # Debian's package named "singularity" is a game, so only these two names are container runtimes.
    for pkg in apptainer singularity-container; do
        if apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            log "installing $pkg"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null || true
            break
        fi
    done
fi

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: $LOG)"
    mkdir -p "$DOCKER_ROOT"
    nohup dockerd --storage-driver=vfs --iptables=false --bridge=none \
        --data-root "$DOCKER_ROOT" >"$LOG" 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        log "dockerd did not come up; last lines of $LOG:"
        tail -n 20 "$LOG" >&2
        exit 1
    fi
fi

STAMP_LABEL="wren.packages=$PACKAGES"
if [ "$(docker image inspect -f '{{ index .Config.Labels "wren.packages" }}' "$IMAGE" 2>/dev/null)" != "$PACKAGES" ]; then
    # vfs copies the whole image for every container, so a smaller image means faster `docker run`.
    if [ "$(cat "$ROOTFS_CACHE/.wren-packages" 2>/dev/null)" != "$PACKAGES" ]; then
        log "debootstrapping a minimal bookworm root into $ROOTFS_CACHE"
        rm -rf "$ROOTFS_CACHE"
        mkdir -p "$ROOTFS_CACHE"
        debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS_CACHE" >/dev/null
        # Keep the image small: package caches and docs are not needed at run time.
        rm -rf "$ROOTFS_CACHE"/var/cache/apt/archives/*.deb "$ROOTFS_CACHE"/usr/share/doc/* \
               "$ROOTFS_CACHE"/usr/share/man/* "$ROOTFS_CACHE"/var/lib/apt/lists/* \
               "$ROOTFS_CACHE"/usr/share/locale/* "$ROOTFS_CACHE"/usr/share/info/*
        echo "$PACKAGES" >"$ROOTFS_CACHE/.wren-packages"
    fi
    log "importing $IMAGE"
    tar -C "$ROOTFS_CACHE" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["/bin/bash"]' -c "LABEL $STAMP_LABEL" - "$IMAGE" >/dev/null
fi
# Podman, for the podman flavour of the docker environment: rootful, vfs storage like dockerd, and
# default ulimits no higher than this machine's hard limits (podman's defaults exceed them here).
if [ "${WREN_SKIP_PODMAN:-0}" != 1 ]; then
    if ! command -v podman >/dev/null; then
        log "installing podman"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman >/dev/null || true
    fi
    if command -v podman >/dev/null; then
        mkdir -p /etc/containers
        [ -f /etc/containers/storage.conf ] || printf '%s\n' '[storage]' 'driver = "vfs"' \
            'runroot = "/run/containers/storage"' 'graphroot = "/var/lib/containers/storage"' \
            >/etc/containers/storage.conf
        if [ ! -f /etc/containers/containers.conf ]; then
            # nproc at the hard limit is refused too (seen with runc here); 4096 is accepted.
            printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=4096:4096"]\n' \
                "$(ulimit -Hn)" "$(ulimit -Hn)" >/etc/containers/containers.conf
        fi
        if ! podman image exists "$IMAGE" 2>/dev/null; then
            log "importing $IMAGE into podman"
            tar -C "$ROOTFS_CACHE" -c . | podman import \
                -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE" >/dev/null 2>&1
        fi
    fi
fi
log "ready: image $IMAGE"
echo "WREN_TEST_IMAGE=$IMAGE"
