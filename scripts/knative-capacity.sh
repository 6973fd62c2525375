#!/usr/bin/env bash
# Builds tools/knative's capacity command (Knative's own autoscaler, see tools/knative/README.md) into
# .kiot/bin/knative-capacity, once (scripts/knative-tool.sh: rebuilt only when tools/knative or Go changes).
# Prints the binary's path. Needs Go >= 1.25.
exec bash "$(dirname "$0")/knative-tool.sh" capacity
