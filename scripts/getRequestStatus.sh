#!/usr/bin/env bash
# Host Factory calls this script with its input as -f FILE (or -d JSON).
# It prints Host Factory's JSON on stdout; hostsmith does the work.
# Set HOSTSMITH_URL to talk to a running daemon, or HOSTSMITH_CONFIG to a config file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
hostsmith="${HOSTSMITH_BIN:-$here/../.venv/bin/hostsmith}"
[ -x "$hostsmith" ] || hostsmith="$(command -v hostsmith)"
exec "$hostsmith" hf getRequestStatus ${HOSTSMITH_CONFIG:+--config "$HOSTSMITH_CONFIG"} "$@"
