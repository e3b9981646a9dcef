#!/usr/bin/env bash
# Creates a separate virtual environment with the original MultiPlanar UNet (Perslev et al.,
# PyPI mpunet 0.2.12) running on TensorFlow 2.15 (CPU), for benchmarks/mpunet_side_by_side.py.
#
# Usage: bash benchmarks/mpunet_setup.sh [VENV]   (default /tmp/mpunet-venv; needs python3.11)
#
# mpunet 0.2.12 pins tensorflow==2.3.2 / tensorflow_addons==0.12.0, which have no wheels for
# current Pythons, so it is installed with --no-deps and its dependencies are pinned here:
# numpy 1.23.5 (mpunet uses np.int), nibabel<5 (it uses get_data()), and releases of the rest
# that still support numpy 1.23. Its default project template is patched for the Keras 2.15
# optimizers: `lr` is renamed `learning_rate` and `decay` is removed from optimizer_kwargs
# (only `mp train` compiles with them; `mp init_project` copies the template).
# pip then reports that mpunet requires tensorflow==2.3.2 / tensorflow_addons==0.12.0: expected.
# Idempotent: re-running reuses the venv and re-applies nothing that is already in place.
set -euo pipefail

venv="${1:-/tmp/mpunet-venv}"
python="${PYTHON:-python3.11}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --no-deps "mpunet==0.2.12"
"$venv/bin/pip" install --quiet \
    "tensorflow-cpu==2.15.*" "tensorflow-addons==0.23.0" "numpy==1.23.5" "nibabel<5" \
    "scipy<1.12" "pandas<2.1" "matplotlib<3.8" "scikit-learn<1.4" "h5py<3.11" \
    "ruamel.yaml<0.18" psutil

template="$("$venv/bin/python" -c 'import mpunet.bin, os; print(os.path.dirname(mpunet.bin.__file__))')/defaults/MultiPlanar/train_hparams.yaml"
sed -i -E '/optimizer_kwargs:/{s/\blr:/learning_rate:/; s/ decay: [^,}]*,//}' "$template"
grep -n "optimizer_kwargs" "$template"
"$venv/bin/python" -c 'import mpunet, tensorflow as tf; print("mpunet", mpunet.__version__, "tensorflow", tf.__version__)'
