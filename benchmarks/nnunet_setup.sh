#!/usr/bin/env bash
# Creates a separate virtual environment with nnU-Net v2 (PyPI nnunetv2) on the same pinned
# torch as hipseg, for benchmarks/peers.py (issue 17). nnU-Net is never a dependency of hipseg:
# nothing in hipseg's install or test suite imports it.
#
# Usage: bash benchmarks/nnunet_setup.sh [VENV]   (default /tmp/nnunet-venv; needs python3.11)
#
# torch is installed first and pinned in the same command as nnunetv2, so resolving nnU-Net's
# requirements can never pull a newer or a CUDA build (several GB).
# Idempotent: re-running reuses the venv.
set -euo pipefail

venv="${1:-/tmp/nnunet-venv}"
python="${PYTHON:-python3.11}"
torch_pin="torch==2.13.0"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "$torch_pin"
"$venv/bin/pip" install --quiet "nnunetv2==2.8.*" "$torch_pin"
"$venv/bin/python" -c 'import torch, nnunetv2, importlib.metadata as m; print("nnunetv2", m.version("nnunetv2"), "torch", torch.__version__)'
# nnU-Net looks trainers up by class name inside its own package only. Its search imports the
# modules of nnUNetTrainer/ before any subpackage; the subpackage primus/ imports timm and with it
# PyPI's torchvision, a CUDA build that fails to load next to the CPU torch. Put at the top level,
# the budget trainer is found before that import happens.
trainers="$("$venv/bin/python" -c 'import nnunetv2, os; print(os.path.join(os.path.dirname(nnunetv2.__file__), "training", "nnUNetTrainer"))')"
cp "$(dirname "$0")/nnunet_budget_trainer.py" "$trainers/nnunet_budget_trainer.py"
echo "trainer nnUNetTrainer_hipsegBudget installed in $trainers"
"$venv/bin/nnUNetv2_train" -h > /dev/null && echo "nnUNetv2_train runs"
