#!/usr/bin/env bash
# Builds the Java compatibility programs (once) and prints the classpath to run them with.
# org.apache.rocketmq:rocketmq-client 4.9.8, the official RocketMQ 4.x client, from Maven
# Central, into a Maven repository of its own under RAFTMQ_COMPAT_DIR (fresh in CI).
#
# Safe when several tests run it at once: a lock, then a completion mark, as in ../setup.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${RAFTMQ_COMPAT_DIR:-$HOME/.cache/raftmq-compat}/java"
ready="$root/.raftmq-ready"
mkdir -p "$root"
exec 9>"$root.lock"
flock 9
stamp="$(cat "$here/pom.xml" "$here"/src/main/java/raftmq/compat/*.java | sha256sum | cut -c1-16)"
if [ ! -f "$ready" ] || [ "$(cat "$ready")" != "$stamp" ]; then
  if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    echo "setup: installing maven and a JDK" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq maven openjdk-17-jdk-headless >/dev/null
  fi
  rm -rf "$root/build" "$root/lib"
  mkdir -p "$root/build"
  cp -r "$here/pom.xml" "$here/src" "$root/build/"
  mvn -q -B -f "$root/build/pom.xml" -Dmaven.repo.local="$root/m2" package \
    dependency:copy-dependencies -DoutputDirectory="$root/lib" >&2
  echo "$stamp" > "$ready"
fi
echo "$root/build/target/raftmq-compat-java-1.jar:$root/lib/*"
