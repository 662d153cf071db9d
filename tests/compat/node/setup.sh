#!/usr/bin/env bash
# Installs the official RocketMQ 5 Node.js client (rocketmq-client-nodejs; package-lock.json pins
# every package) once, and prints the node_modules directory to put on NODE_PATH.
#
# Safe when several tests run it at once (a lock; the install is marked complete at its end).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir="${RAFTMQ_COMPAT_DIR:-$HOME/.cache/raftmq-compat}/node"
ready="$dir/.raftmq-ready"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ ! -f "$ready" ] || ! cmp -s "$here/package-lock.json" "$dir/package-lock.json"; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing nodejs and npm" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  touch "$ready"
fi
echo "$dir/node_modules"
