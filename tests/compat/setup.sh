#!/usr/bin/env bash
# Creates the virtualenv of the compatibility tests (once) and prints its python.
# rocketmq-python-client 5.1.2 is the official RocketMQ 5 Python client, from PyPI.
#
# Safe when several tests run it at once: they take turns on a lock; the first builds the
# virtualenv and marks it complete, the others find it ready. A virtualenv without the mark (a
# run killed midway) is built again from nothing.
set -euo pipefail
venv="${RAFTMQ_COMPAT_DIR:-$HOME/.cache/raftmq-compat}/pyvenv"
ready="$venv/.raftmq-ready"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ ! -f "$ready" ] || ! "$venv/bin/python" -c 'import rocketmq' 2>/dev/null; then
  command -v python3 >/dev/null 2>&1 || { echo "setup: python3 is missing (scripts/setup installs it)" >&2; exit 1; }
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check rocketmq-python-client==5.1.2 >&2
  touch "$ready"
fi
echo "$venv/bin/python"
