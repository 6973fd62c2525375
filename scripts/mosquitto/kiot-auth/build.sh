#!/usr/bin/env bash
# Builds the kiot-auth Mosquitto plugin into .kiot/lib/kiot_auth.so (git-ignored) when a source is newer.
# Needs gcc and Debian 12's mosquitto-dev, libmosquitto-dev, libcurl4-openssl-dev, libcjson-dev
# (scripts/services.sh install installs them). Prints the path of the plugin.
#   build.sh --missing-packages   prints the Debian packages of those that are missing (none: an empty line)
set -euo pipefail
if [ "${1:-}" = --missing-packages ]; then
  missing=()
  command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
  [ -f /usr/include/mosquitto_broker.h ] || missing+=(mosquitto-dev)
  [ -f /usr/include/mosquitto.h ] || missing+=(libmosquitto-dev)
  # libcurl's headers live in a multiarch folder: ask the compiler, when there is one.
  { command -v gcc >/dev/null 2>&1 && echo '#include <curl/curl.h>' | gcc -E -x c - >/dev/null 2>&1; } ||
    missing+=(libcurl4-openssl-dev)
  [ -f /usr/include/cjson/cJSON.h ] || missing+=(libcjson-dev)
  echo "${missing[*]}"
  exit 0
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=${KIOT_AUTH_PLUGIN_OUT:-$ROOT/.kiot/lib/kiot_auth.so}
mkdir -p "$(dirname "$OUT")"
stale=0
[ -f "$OUT" ] || stale=1
for source in "$HERE"/*.c "$HERE"/*.h "$HERE/build.sh"; do [ "$source" -nt "$OUT" ] && stale=1; done
if [ "$stale" = 1 ]; then
  # -Wl,--no-undefined is not used: the mosquitto_* functions are resolved from the broker at load time.
  gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -fPIC -shared -o "$OUT.tmp" \
    "$HERE/kiot_auth.c" "$HERE/clients.c" "$HERE/acl.c" "$HERE/http.c" -lcurl -lcjson
  mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
