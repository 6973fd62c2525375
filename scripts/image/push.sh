#!/usr/bin/env bash
# `npm run image:push -- DESTINATION`: pushes the image `npm run image` built last (`kiot:latest`) with the same
# engine and storage (scripts/image/engine.sh), so a machine without docker deploys what it built with podman
# or buildah. scripts/deploy runs `npm run image` and then this.
#
#   DESTINATION   REGISTRY/NAME:TAG            to a registry (podman/buildah: docker://…; docker: tag + push)
#                 docker-archive:FILE[:NAME:TAG]  a `docker load`-able tar (any engine; docker via `docker save`)
#                 oci-archive:FILE, dir:DIR, … any containers-transports destination (podman/buildah only)
# The credentials are the engine's own (`podman login`, `docker login`); nothing here handles secrets.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE_ROOT=$PWD
# shellcheck source=engine.sh
source scripts/image/engine.sh

destination=${1:-}
if [ -z "$destination" ] || [ $# -ne 1 ]; then
  echo "usage: npm run image:push -- REGISTRY/NAME:TAG | docker-archive:FILE[:NAME:TAG] | oci-archive:FILE" >&2
  exit 2
fi
source_image=${KIOT_IMAGE_NAME:-kiot}:latest

detect_engine
case "$ENGINE" in
  docker)
    case "$destination" in
      docker-archive:*)
        # docker-archive:FILE[:NAME:TAG], as the containers transports spell it.
        archive=${destination#docker-archive:}
        saved=$source_image
        if [[ $archive == *:* ]]; then
          saved=${archive#*:}
          archive=${archive%%:*}
          docker tag "$source_image" "$saved"
        fi
        docker save --output "$archive" "$saved"
        ;;
      *:/* | oci-archive:* | oci:* | dir:*)
        image_log "docker pushes to a registry or docker-archive:FILE only, not $destination"
        exit 2
        ;;
      *)
        docker tag "$source_image" "$destination"
        docker push "$destination"
        ;;
    esac
    ;;
  podman | buildah)
    # A bare reference names a registry; anything with a transport prefix goes as it is.
    case "$destination" in
      docker://* | docker-archive:* | oci-archive:* | oci:* | dir:*) target=$destination ;;
      *) target=docker://$destination ;;
    esac
    "${ENGINE_CMD[@]}" push "$source_image" "$target"
    ;;
esac
image_log "pushed $source_image to $destination with $ENGINE"
