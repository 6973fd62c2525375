#!/usr/bin/env bash
# Builds tools/knative's admission command (Knative's own admission code, see tools/knative/README.md) into
# .kiot/bin/knative-admission, once (scripts/knative-tool.sh: rebuilt only when tools/knative or Go changes).
# Prints the binary's path. Needs Go >= 1.25.
exec bash "$(dirname "$0")/knative-tool.sh" admission
