#!/usr/bin/env bash
# Prepare a device machine (see benchmarks/README.md, "GPU runs"): install the wheels carried
# in the folders given as arguments (default .whl; also xz'd site trees, *.tar.xz) into
# /tmp/site, build the cuBLAS 12 shim for faiss-gpu-cu12, and write /tmp/device-env.sh to
# source. Idempotent: a second call on the same machine adds to /tmp/site.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
site=/tmp/site
mkdir -p "$site" /tmp/cublas12
for dir in "${@:-.whl}"; do
  if compgen -G "$dir/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site.new" "$dir"/*.whl
    cp -a "$site.new/." "$site/" && rm -rf "$site.new"
  fi
  for t in "$dir"/*.tar.xz; do if [ -e "$t" ]; then tar -C "$site" -xJf "$t"; fi; done
done
cublas13="$(python3 - <<'PY'
import glob, os, sys
for base in sys.path:
    for hit in glob.glob(os.path.join(base, "nvidia", "**", "libcublas.so.13"), recursive=True):
        print(os.path.dirname(hit)); raise SystemExit
PY
)"
gcc -O2 -shared -fPIC -o /tmp/cublas12/libcublas.so.12 -Wl,-soname,libcublas.so.12 \
  -Wl,--version-script="$here/cublas12.map" "$here/cublas12_shim.c" -ldl
echo 'void bindsearch_cublaslt12_placeholder(void) {}' > /tmp/cublas12/lt.c
gcc -shared -fPIC -o /tmp/cublas12/libcublasLt.so.12 -Wl,-soname,libcublasLt.so.12 /tmp/cublas12/lt.c
# faiss-gpu 1.15's __init__ preloads nvidia.{cuda_runtime,cublas,curand}/lib/*: give it the
# shim and the machine's libcurand.so.10 (the same soname in CUDA 12 and 13) in that layout.
mkdir -p "$site/nvidia/cublas/lib" "$site/nvidia/curand/lib"
cp /tmp/cublas12/libcublas.so.12 /tmp/cublas12/libcublasLt.so.12 "$site/nvidia/cublas/lib/"
curand="$(ls "$cublas13"/libcurand.so.10* 2>/dev/null | head -1)"
if [ -n "$curand" ]; then ln -sf "$curand" "$site/nvidia/curand/lib/libcurand.so.10"; fi
cudart="$(ls -d $site/nvidia/cuda_runtime/lib 2>/dev/null || true)"
cat > /tmp/device-env.sh <<ENV
export PYTHONPATH="$PWD:$site\${PYTHONPATH:+:\$PYTHONPATH}"
export LD_LIBRARY_PATH="/tmp/cublas12:$cudart:$cublas13\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export _FAISS_WHEEL_DISABLE_CUDA_PRELOAD=1
ENV
cat /tmp/device-env.sh
