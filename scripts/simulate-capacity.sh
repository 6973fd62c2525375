#!/usr/bin/env bash
# The capacity plan (docs/capacity.md): a day of kiot's functions under the daily load curve for 10,000, 100,000
# and 1,000,000 devices at one message a minute, with Knative's own autoscaler deciding the replicas (tools/knative
# `capacity simulate`, knative.dev/serving v0.50.0) and the per-instance capacities measured by bench:capacity
# (knative/deploy-values.json). Prints one JSON line per scenario and writes docs/capacity/replicas-<devices>.svg.
# Flags after the script replace the defaults: --devices 5000,20000 --interval 30s --curve my.csv --svg /tmp/plots
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash scripts/knative-capacity.sh)
exec "$bin" simulate --values knative/deploy-values.json --model docs/capacity/model.json \
  --curve docs/capacity/curve.csv --devices 10000,100000,1000000 --svg docs/capacity "$@" knative/services/*.yaml
