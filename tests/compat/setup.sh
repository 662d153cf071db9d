#!/usr/bin/env bash
# Creates the virtualenv of the compatibility tests (once) and prints its python.
# rocketmq-python-client 5.1.2 is the official RocketMQ 5 Python client, from PyPI.
set -euo pipefail
venv="${RAFTMQ_PY_VENV:-$HOME/.cache/raftmq-pyvenv}"
if ! "$venv/bin/python" -c 'import rocketmq' 2>/dev/null; then
  python3 -m venv "$venv" >&2 || { apt-get install -y python3-venv >&2 && python3 -m venv "$venv" >&2; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check rocketmq-python-client==5.1.2 >&2
fi
echo "$venv/bin/python"
