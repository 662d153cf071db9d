#!/usr/bin/env bash
# Builds the Rust compatibility program (once) and prints the path of its binary.
# rocketmq-client-rust 1.0.0, a pure-Rust RocketMQ 4.x (Remoting) client, from crates.io; every
# dependency pinned by Cargo.lock beside this script. Built into a target directory of its own
# under RAFTMQ_COMPAT_DIR (fresh in CI), not the workspace's: this package is not a workspace member.
#
# Safe when several tests run it at once: a lock, then a completion mark, as in ../setup.sh. The
# mark holds a digest of the sources, so a change to them builds again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${RAFTMQ_COMPAT_DIR:-$HOME/.cache/raftmq-compat}/rust-target"
# Cargo profile: `compat` (tests: quickest to build) or `release` (benchmarks).
profile="${RAFTMQ_COMPAT_PROFILE:-compat}"
ready="$target/.raftmq-ready-$profile"
bin="$target/$profile/raftmq-compat-rust"
mkdir -p "$target"
exec 9>"$target.lock"
flock 9
lockfile=()
[ -f "$here/Cargo.lock" ] && lockfile=("$here/Cargo.lock")
stamp="$(cat "$here/Cargo.toml" "${lockfile[@]}" "$here"/src/*.rs | sha256sum | cut -c1-16)"
if [ ! -f "$ready" ] || [ "$(cat "$ready")" != "$stamp" ] || [ ! -x "$bin" ]; then
  command -v cargo >/dev/null 2>&1 || { echo "setup: cargo is missing" >&2; exit 1; }
  rm -f "$ready"
  locked=()
  [ -f "$here/Cargo.lock" ] && locked=(--locked)
  echo "setup: building raftmq-compat-rust (rocketmq-client-rust, rocketmq) into $target, profile $profile" >&2
  (cd "$here" && cargo build --profile "$profile" "${locked[@]}" --manifest-path "$here/Cargo.toml" --target-dir "$target") >&2
  [ -x "$bin" ] || { echo "setup: the build left no $bin" >&2; exit 1; }
  echo "$stamp" > "$ready"
fi
echo "$bin"
