#!/usr/bin/env bash
# The container engine the image scripts use, found in this order: docker (when its daemon answers),
# podman, buildah. With none of them, Debian's podman, buildah and runc are installed (as root).
# Sourced by build.sh and base.sh; run directly it prints the engine's command line, one word per line,
# for tools that drive the same engine and storage (the image test, bench:image):
#   bash scripts/image/engine.sh            # e.g. podman / --root / …/.kiot/image/storage / …
#
# podman and buildah keep their images under .kiot/image/ (git-ignored), not in the machine's storage: a
# fresh clone builds its image for real, and nothing here touches images of other projects. The storage
# driver is overlay when the kernel mounts it there, else vfs (KIOT_IMAGE_STORAGE_DRIVER overrides).
# Containers run with runc (KIOT_IMAGE_RUNTIME overrides), which is what Debian's podman works with here.
set -euo pipefail

IMAGE_ROOT=${IMAGE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
IMAGE_STATE=${KIOT_IMAGE_STATE:-$IMAGE_ROOT/.kiot/image}

image_log() { printf '[image %3ss] %s\n' "$SECONDS" "$*" >&2; }

apt_install() {
  image_log "installing Debian packages: $*"
  # Other jobs on the machine may hold the dpkg lock for a while: wait for it rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

# Prints the storage driver the podman/buildah storage under $IMAGE_STATE uses: the one it was created
# with, else overlay if the kernel can mount an overlay in that folder, else vfs.
storage_driver() {
  if [ -n "${KIOT_IMAGE_STORAGE_DRIVER:-}" ]; then echo "$KIOT_IMAGE_STORAGE_DRIVER"; return; fi
  if [ -s "$IMAGE_STATE/storage-driver" ]; then cat "$IMAGE_STATE/storage-driver"; return; fi
  local probe driver=vfs
  mkdir -p "$IMAGE_STATE"
  probe=$(mktemp -d "$IMAGE_STATE/overlay-probe.XXXXXX")
  mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    driver=overlay
  fi
  rm -rf "$probe"
  echo "$driver" > "$IMAGE_STATE/storage-driver"
  echo "$driver"
}

# Sets ENGINE (docker|podman|buildah) and ENGINE_CMD (the command with its storage options).
detect_engine() {
  local wanted=${KIOT_IMAGE_ENGINE:-}
  if [ -z "$wanted" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then wanted=docker
    elif command -v podman >/dev/null 2>&1; then wanted=podman
    elif command -v buildah >/dev/null 2>&1; then wanted=buildah
    else
      [ "$(id -u)" = 0 ] || { image_log "no docker, podman or buildah, and not root to install them"; return 1; }
      apt_install podman buildah runc slirp4netns uidmap
      wanted=podman
    fi
  fi
  ENGINE=$wanted
  case "$ENGINE" in
    docker) ENGINE_CMD=(docker) ;;
    podman | buildah)
      local driver
      driver=$(storage_driver)
      ENGINE_CMD=("$ENGINE" --root "$IMAGE_STATE/storage" --runroot "$IMAGE_STATE/run" --storage-driver "$driver")
      ;;
    *) image_log "unknown KIOT_IMAGE_ENGINE=$ENGINE (docker|podman|buildah)"; return 1 ;;
  esac
}

# The command that runs containers: docker, or podman on the same storage with runc. Needs podman
# when the images were built with buildah (installed here when missing).
run_engine_cmd() {
  case "$ENGINE" in
    docker) RUN_CMD=(docker) ;;
    *)
      if ! command -v podman >/dev/null 2>&1; then apt_install podman runc slirp4netns; fi
      local runtime=${KIOT_IMAGE_RUNTIME:-}
      if [ -z "$runtime" ]; then runtime=$(command -v runc || true); fi
      RUN_CMD=(podman "${ENGINE_CMD[@]:1}")
      if [ -n "$runtime" ]; then RUN_CMD+=(--runtime "$runtime"); fi
      ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  detect_engine
  run_engine_cmd
  printf '%s\n' "${RUN_CMD[@]}"
fi
