#!/usr/bin/env bash
# One entry point for newcomers and CI:
#   bash scripts/dev.sh setup   create .venv, install edgekit with every extra, build the C device
#   bash scripts/dev.sh demo    setup, then run the main demo (the glasses sample; or demo NAME)
#   bash scripts/dev.sh test    setup, then lint, type-check and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${EDGEKIT_VENV:-.venv}
PY="$VENV/bin/python"

need_apt=()
apt_missing() { dpkg -s "$1" >/dev/null 2>&1 || need_apt+=("$1"); }

setup() {
  if command -v dpkg >/dev/null 2>&1; then
    for pkg in libportaudio2 libusb-1.0-0 build-essential espeak-ng clang libclang-rt-14-dev jackd2 chromium; do apt_missing "$pkg"; done
    if [ ${#need_apt[@]} -gt 0 ]; then
      if [ "$(id -u)" = 0 ]; then
        echo "== apt-get install ${need_apt[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
      else
        echo "!! missing system packages: ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
      fi
    fi
  fi
  if [ ! -x "$PY" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q -U pip
  fi
  echo "== pip install -e .[dev]"
  "$PY" -m pip install -q -e ".[dev]"
  if [ -f firmware_bridge/c/Makefile ]; then
    echo "== building the C virtual device"
    make -s -C firmware_bridge/c
  fi
  echo "== fetching models"
  "$VENV/bin/edgekit" models fetch --all
}

case "${1:-test}" in
  setup) setup ;;
  demo)
    setup
    if [ $# -gt 1 ]; then
      "$VENV/bin/edgekit" demo "${@:2}"
    else
      # the main demo: the glasses sample on its built-in clip, reading the sign aloud
      mkdir -p demo-output
      "$VENV/bin/edgekit" demo glasses --read-this --speak demo-output/sign.wav \
        --save demo-output/hud.avi
      echo "== more: bash scripts/dev.sh demo robot|toy|kiosk|runtime"
    fi
    ;;
  test)
    setup
    echo "== ruff"
    dirs=()
    for d in edgekit firmware_bridge tests benchmarks models samples; do [ -d "$d" ] && dirs+=("$d"); done
    "$VENV/bin/ruff" check "${dirs[@]}"
    "$VENV/bin/ruff" format --check "${dirs[@]}"
    echo "== mypy"
    "$VENV/bin/mypy"
    echo "== pytest"
    "$VENV/bin/pytest" "${@:2}"
    ;;
  *) echo "usage: bash scripts/dev.sh setup|demo|test [args]" >&2; exit 2 ;;
esac
