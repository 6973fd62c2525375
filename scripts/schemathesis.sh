#!/usr/bin/env bash
# Installs schemathesis (pinned, from PyPI) into .kiot/venv, once, and prints the path of its `st` command.
# The contract test (test/integration/contracts) runs it against every function of a running stack.
# Needs Python >= 3.9 with venv (Debian: python3-venv, installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
venv=.kiot/venv
mkdir -p .kiot
exec 9>.kiot/.schemathesis.lock
flock 9

if [ -x "$venv/bin/st" ] && [ "$(cat "$venv/.schemathesis-version" 2>/dev/null)" = "$VERSION" ]; then
  echo "$PWD/$venv/bin/st"
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
"$venv/bin/st" --version >&2
echo "$VERSION" >"$venv/.schemathesis-version"
echo "$PWD/$venv/bin/st"
