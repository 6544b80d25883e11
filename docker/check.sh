#!/usr/bin/env bash
# Checks docker/ and deploy/kubernetes/ without a Docker engine or a cluster:
# runs docker/test_deploy_files.py (with pytest when it is installed, else with
# the file's own runner, which ends with "N passed, M failed").
#
#   docker/check.sh                       uses $WIRESPAN_BIN or target/debug/wirespan
#   WIRESPAN_BIN=target/release/wirespan docker/check.sh
#
# Needs python3 and PyYAML (scripts/setup.sh installs it), and a built agent
# (`cargo build -p wirespan --locked`) for the `wirespan config check` tests.
# Uses the kubernetes-validate package and kubectl when present.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "check: PyYAML is missing: python3 -m pip install pyyaml" >&2
  exit 2
fi
if [ -z "${WIRESPAN_BIN:-}" ] && [ ! -x target/debug/wirespan ]; then
  echo "check: no agent binary: run \`cargo build -p wirespan --locked\` or set WIRESPAN_BIN (the config tests will fail)" >&2
fi

if python3 -c 'import pytest' 2>/dev/null; then
  exec python3 -m pytest -q docker/test_deploy_files.py
else
  exec python3 docker/test_deploy_files.py
fi
