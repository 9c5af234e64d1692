set -e
V=${1:-/tmp/rknn-research/venv2}
t(){ S=$(date +%s.%N); "$@" > /tmp/rknn-research/recipe_step.log 2>&1 || { tail -20 /tmp/rknn-research/recipe_step.log; exit 1; }; E=$(date +%s.%N); printf '%6.1fs  %s\n' "$(echo "$E-$S"|bc)" "$*"; }
rm -rf "$V"
t python3 -m venv "$V"
t "$V/bin/python" -m pip install --no-cache-dir torch==2.13.0
t "$V/bin/python" -m pip install --no-cache-dir --no-deps rknn-toolkit2==2.5.0
t "$V/bin/python" -m pip install --no-cache-dir "protobuf>=4.21.6,<=4.25.4" "psutil>=5.9.0" "ruamel.yaml>=0.17.21" "scipy>=1.9.3" "tqdm>=4.64.1" "opencv-python-headless>=4.5.5.64" "fast-histogram>=0.11" "numpy<=1.26.4" "onnx>=1.16.1,<=1.18.0" "onnxruntime>=1.17.0" "setuptools<81"
t "$V/bin/python" -c "from rknn.api import RKNN"
du -sh "$V"
"$V/bin/python" -m pip check || true
"$V/bin/python" -m pip freeze
