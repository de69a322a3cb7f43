#!/usr/bin/env bash
# Host Factory calls this script with its input as -f FILE (or -d JSON).
# It prints Host Factory's JSON on stdout; hostsmith does the work.
# HOSTSMITH_BIN: the hostsmith command (default: the .venv beside this script's
#   real location, then hostsmith on PATH). HOSTSMITH_URL: a running daemon.
#   HOSTSMITH_CONFIG: a config file. Host Factory's own HF_PROVIDER_* variables
#   are read by hostsmith itself.
set -uo pipefail
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
hostsmith="${HOSTSMITH_BIN:-$here/../.venv/bin/hostsmith}"
[ -x "$hostsmith" ] || hostsmith="$(command -v hostsmith || true)"
if [ -z "$hostsmith" ]; then
    # Host Factory shows only what is on stdout: say what is wrong there, as its JSON.
    printf '{"message": "requestMachines: the hostsmith command was not found (looked for %s and on PATH); set HOSTSMITH_BIN to its path"}\n' \
        "${HOSTSMITH_BIN:-$here/../.venv/bin/hostsmith}"
    exit 1
fi
exec "$hostsmith" hf requestMachines ${HOSTSMITH_CONFIG:+--config "$HOSTSMITH_CONFIG"} "$@"
