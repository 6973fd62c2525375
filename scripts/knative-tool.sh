#!/usr/bin/env bash
# Builds one command of tools/knative (Knative's own code, see tools/knative/README.md) into
# .kiot/bin/knative-<command>, once: it is rebuilt only when a source file of tools/knative, go.mod, go.sum
# or the Go toolchain changes. The first build compiles the Knative and Kubernetes modules (minutes on two
# cores); later builds reuse Go's build cache. Prints the binary's path. Needs Go >= 1.25.
#   bash scripts/knative-tool.sh admission|capacity
set -euo pipefail
cd "$(dirname "$0")/.."

command=${1:?usage: knative-tool.sh admission|capacity}
[ -d "tools/knative/cmd/$command" ] || { echo "knative-tool: no command tools/knative/cmd/$command" >&2; exit 2; }
bin=.kiot/bin/knative-$command
mkdir -p .kiot/bin
command -v go >/dev/null 2>&1 || { echo "knative-$command: Go >= 1.25 is needed (https://go.dev/dl/)" >&2; exit 1; }

# One build at a time (test files and scripts/test.sh may ask at once); the others wait and reuse it.
exec 9>.kiot/bin/.knative-tool.lock
flock 9

stamp=$( { go version; find tools/knative -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 \
  | sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
if [ -x "$bin" ] && [ "$(cat "$bin.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$PWD/$bin"
  exit 0
fi

echo "knative-$command: building tools/knative (the first build takes minutes)" >&2
start=$SECONDS
(cd tools/knative && go mod download && go build -trimpath -buildvcs=false -o "../../$bin.tmp" "./cmd/$command")
mv "$bin.tmp" "$bin"
echo "$stamp" >"$bin.stamp"
echo "knative-$command: built in $((SECONDS - start)) s" >&2
echo "$PWD/$bin"
