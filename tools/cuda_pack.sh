#!/bin/sh
# Packs everything bench/cuda_check.ts needs on a machine with a GPU but no Deno, no npm and no
# network, in parts small enough to carry one per call:
#   - bench/cuda_check.ts bundled (`deno bundle`, onnxruntime-node left external);
#   - the Deno binary running this script;
#   - onnxruntime-node (linux-x64 binaries only) and onnxruntime-common, as a node_modules folder;
#   - the CUDA provider files, taken from onnxruntime-node's folder (run `deno task cuda:setup`
#     first; the check verifies their SHA-256 again on the GPU machine);
#   - the ddpm-cifar10-small parity fixture;
#   - run.sh, which puts the CUDA 13 / cuDNN 9 libraries of the Python nvidia-* wheels on
#     LD_LIBRARY_PATH (when there are any) and runs the check.
# Then tar | xz -0 (XZ_LEVEL=-6 saves little: the libraries dominate), split into 50 MiB parts (the working
# tree, ~9 MB, travels with each part under a 64 MiB limit) and SHA-256 sums of the parts and of
# the whole archive.
#
# Usage (from the repository root): tools/cuda_pack.sh [fixtures-dir] [out-dir]
#   fixtures-dir: holds ddpm-cifar10-small/ and ddpm-cifar10-small-parity-t30.safetensors
#                 (default ../shared/fixtures); out-dir: default out/cuda-pack (git-ignored).
# On the other machine: tools/cuda_unpack.sh [parts-dir] [cuda_check options]
set -eu

fixtures=${1:-../shared/fixtures}
out=${2:-out/cuda-pack}
name=diffprobe-cuda
stage="$out/stage/$name"
parts="$out/parts"

rm -rf "$out"
mkdir -p "$stage" "$parts"

echo "bundling bench/cuda_check.ts"
deno bundle --quiet --platform deno --external onnxruntime-node -o "$stage/cuda_check.js" \
  bench/cuda_check.ts

deno_bin=$(readlink -f "$(command -v deno)")
cp "$deno_bin" "$stage/deno"

ort_root=$(deno eval --quiet 'console.log(new URL(import.meta.resolve("onnxruntime-node")).pathname)' |
  sed 's|/dist/[^/]*$||')
common_root=$(dirname "$ort_root")/onnxruntime-common
[ -d "$common_root" ] || common_root=$(readlink -f "$ort_root/../onnxruntime-common")
ort_bin="$ort_root/bin/napi-v6/linux/x64"
for f in libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so; do
  if [ ! -f "$ort_bin/$f" ]; then
    echo "missing $ort_bin/$f: run 'deno task cuda:setup' first" >&2
    exit 1
  fi
done
mkdir -p "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux" "$stage/node_modules/onnxruntime-common"
cp -r "$ort_root/package.json" "$ort_root/dist" "$stage/node_modules/onnxruntime-node/"
cp -r "$ort_bin" "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
cp -r "$common_root/package.json" "$common_root/dist" "$stage/node_modules/onnxruntime-common/"

mkdir -p "$stage/fixtures"
cp -r "$fixtures/ddpm-cifar10-small" "$fixtures/ddpm-cifar10-small-parity-t30.safetensors" \
  "$stage/fixtures/"

# Deno resolves the bundle's bare "onnxruntime-node" import from this node_modules folder.
printf '{ "type": "module", "private": true }\n' > "$stage/package.json"
printf '{ "nodeModulesDir": "manual", "lock": false }\n' > "$stage/deno.json"

cat > "$stage/run.sh" <<'EOF'
#!/bin/sh
# Runs the CUDA check from this folder. CUDA 13 and cuDNN 9 come from LD_LIBRARY_PATH, to which
# the lib folders of the Python nvidia-* wheels are added when python3 has them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if command -v python3 >/dev/null 2>&1; then
  libs=$(python3 -c '
import os
try:
    import nvidia
except ImportError:
    raise SystemExit
found = []
for base in nvidia.__path__:
    for root, dirs, files in os.walk(base):
        if any(".so" in f for f in files) and root not in found:
            found.append(root)
print(":".join(sorted(found)))
' || true)
  if [ -n "$libs" ]; then
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
export DENO_NO_UPDATE_CHECK=1 DENO_DIR="$here/.deno-dir"
cd "$here"
exec ./deno run --allow-read --allow-write=/tmp --allow-ffi \
  --allow-env=LD_LIBRARY_PATH,NVIDIA_TF32_OVERRIDE cuda_check.js --fixtures fixtures "$@"
EOF
chmod +x "$stage/run.sh" "$stage/deno"

echo "compressing (xz ${XZ_LEVEL:--0})"
tar -C "$out/stage" -cf - "$name" | xz "${XZ_LEVEL:--0}" -T0 > "$out/$name.tar.xz"
split -b 50M -d -a 2 "$out/$name.tar.xz" "$parts/$name.tar.xz.part-"
(cd "$out" && sha256sum "$name.tar.xz" > "parts/ARCHIVE.sha256")
(cd "$parts" && sha256sum "$name".tar.xz.part-* > PARTS.sha256)
rm -rf "$out/stage" "$out/$name.tar.xz"
du -b "$parts"/* | sed "s|$parts/||"
echo "parts in $parts; on the GPU machine: tools/cuda_unpack.sh $parts"
