#!/usr/bin/env bash
# System packages the slow tests use, installed with apt-get when missing:
# Chromium (the docs browser test), PostgreSQL (the team-mode tests) and redis-server (the
# generated project's shared rate-limit store tests, run by the slow tests).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test: ${missing[*]} missing and no apt-get here: install them, or run 'make test-fast'" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "test: ${missing[*]} missing: run 'sudo apt-get install ${missing[*]}', or 'make test-fast'" >&2
  exit 1
fi
echo "test: installing ${missing[*]} with apt-get"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
