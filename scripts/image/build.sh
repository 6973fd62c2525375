#!/usr/bin/env bash
# `npm run image`: builds the repository's Dockerfile into `kiot:latest` (and `kiot:ctx-<hash>`) with the
# engine the machine has (scripts/image/engine.sh: docker, podman or buildah), after making sure its base
# image is there (scripts/image/base.sh: present, pulled, or made locally from Debian packages).
#
# Inputs are hashed (the Dockerfile, .dockerignore, every path the Dockerfile copies from the context,
# the base image's id): when an image of the same hash was built from this clone (.kiot/image/built/),
# it is reused and nothing runs; otherwise the engine builds, reusing its own layer cache.
# The machine's CA bundle goes to npm inside the build as a secret (never into a layer): KIOT_BUILD_CA,
# else NODE_EXTRA_CA_CERTS, else /etc/ssl/certs/ca-certificates.crt when present.
#
# Progress goes to stderr; stdout gets one JSON line: image, id, engine, the command that runs containers
# on the same storage (`run`), the context hash, whether it was reused, the base's source and the seconds
# each part took.
#   npm run image                 KIOT_IMAGE_NAME=kiot (default)   KIOT_IMAGE_REBUILD=1 to ignore the hash
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE_ROOT=$PWD
# shellcheck source=base.sh
source scripts/image/base.sh

NAME=${KIOT_IMAGE_NAME:-kiot}
started=$SECONDS
run_started=$(date +%s)

# The base the Dockerfile names (its NODE_IMAGE argument's default).
base=$(sed -n 's/^ARG NODE_IMAGE=\(.*\)$/\1/p' Dockerfile | head -1)
[ -n "$base" ] || { image_log "the Dockerfile has no ARG NODE_IMAGE=…"; exit 1; }

detect_engine
run_engine_cmd
mkdir -p "$IMAGE_STATE/built"
# One build at a time per clone (the image test and a manual `npm run image` may overlap).
exec 9>"$IMAGE_STATE/lock"
flock 9

ensure_base "$base"
image_id() {
  "${RUN_CMD[@]}" image inspect --format '{{.Id}}' "$1" 2>/dev/null
}
base_id=$(image_id "docker.io/library/${base#docker.io/library/}" || image_id "$base")

# Every context path the Dockerfile copies (COPY without --from), hashed with its content. A superset of
# what .dockerignore lets through can only make the hash change more often, never reuse a stale image.
context_hash() {
  local sources
  sources=$(grep '^COPY ' Dockerfile | grep -v -- '--from=' | sed 's/^COPY \+\(--[a-z-]\+=[^ ]\+ \+\)*//' | awk '{ NF--; print }' | tr ' ' '\n' | sort -u)
  {
    echo "$base_id"
    sha256sum Dockerfile .dockerignore
    # shellcheck disable=SC2086 # one path per word
    find $sources -type f -not -path '*/node_modules/*' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}
hash=$(context_hash)
tag=$NAME:ctx-$hash
stamp=$IMAGE_STATE/built/$hash

reused=false
build_seconds=0
if [ "${KIOT_IMAGE_REBUILD:-0}" != 1 ] && [ -f "$stamp" ] && image_id "$tag" >/dev/null; then
  reused=true
  image_log "$tag: inputs unchanged since $(date -r "$stamp" -u +%FT%TZ), reused"
else
  ca=${KIOT_BUILD_CA:-${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}}
  args=(--tag "$tag" --tag "$NAME:latest" --label "io.kiot.context-hash=$hash")
  if [ -s "$ca" ]; then args+=(--secret "id=npm-ca,src=$ca"); fi
  case "$ENGINE" in
    docker) build=(env DOCKER_BUILDKIT=1 docker build "${args[@]}") ;;
    # chroot isolation: no nested container runtime needed for RUN steps; --pull=never: ensure_base put
    # the base in the store, and a registry must not be asked.
    podman | buildah) build=("${ENGINE_CMD[@]}" build --isolation chroot --layers --pull=never "${args[@]}") ;;
  esac
  build_started=$SECONDS
  image_log "building $tag with $ENGINE"
  # A build step that failed for a passing reason (npm's registry fetches) is tried once more; the layers
  # done before it come from the cache.
  if ! "${build[@]}" . >&2; then
    image_log "build failed; trying once more"
    "${build[@]}" . >&2
  fi
  build_seconds=$((SECONDS - build_started))
  touch "$stamp"
  image_log "built $tag in ${build_seconds}s"
  # Earlier builds of this clone: untag them, and drop the untagged layers of builds older than a day.
  # Younger ones stay: the build stage's layers (npm ci above all) are untagged too, and they are the
  # cache the next build starts from.
  for old in $("${RUN_CMD[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep -E "(^|/)$NAME:ctx-" | grep -v ":ctx-$hash\$" || true); do
    "${RUN_CMD[@]}" rmi "$old" >/dev/null 2>&1 || true
  done
  find "$IMAGE_STATE/built" -type f -not -name "$hash" -delete
  # A base made anew leaves nothing of the earlier cache usable: all of it from before this run goes.
  until=24h
  if [ "$BASE_SOURCE" = local ]; then until=$run_started; fi
  "${RUN_CMD[@]}" image prune --force --filter "until=$until" >/dev/null 2>&1 || true
fi
"${RUN_CMD[@]}" tag "$tag" "$NAME:latest"
id=$(image_id "$tag")

node -e '
  const [image, id, engine, hash, reused, base, baseSource, baseSeconds, buildSeconds, seconds, ...run] = process.argv.slice(1);
  console.log(JSON.stringify({ image, id, engine, run, hash, reused: reused === "true", base, baseSource,
    seconds: { base: Number(baseSeconds), build: Number(buildSeconds), total: Number(seconds) } }));
' "$tag" "$id" "$ENGINE" "$hash" "$reused" "$base" "$BASE_SOURCE" "$BASE_SECONDS" "$build_seconds" \
  "$((SECONDS - started))" "${RUN_CMD[@]}"
