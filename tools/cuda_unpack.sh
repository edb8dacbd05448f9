#!/bin/sh
# Joins the parts written by tools/cuda_pack.sh, verifies every part and the whole archive by
# SHA-256, unpacks it and runs the CUDA check (bench/cuda_check.ts, bundled) with its own Deno.
#
# Usage (from the repository root): tools/cuda_unpack.sh [parts-dir] [cuda_check options]
#   parts-dir: default out/cuda-pack/parts; it must hold every part, PARTS.sha256, ARCHIVE.sha256.
#   Unpacks into out/cuda-run (git-ignored). Exit status: the check's (0 = CUDA ran and matched).
set -eu

parts=${1:-out/cuda-pack/parts}
[ $# -gt 0 ] && shift
name=diffprobe-cuda
run=out/cuda-run

echo "verifying parts in $parts"
(cd "$parts" && sha256sum -c --quiet PARTS.sha256)
rm -rf "$run"
mkdir -p "$run"
cat "$parts/$name".tar.xz.part-* > "$run/$name.tar.xz"
echo "verifying the joined archive"
expected=$(cut -d' ' -f1 "$parts/ARCHIVE.sha256")
actual=$(sha256sum "$run/$name.tar.xz" | cut -d' ' -f1)
if [ "$expected" != "$actual" ]; then
  echo "the joined archive does not match: expected $expected, got $actual" >&2
  exit 3
fi
xz -dc "$run/$name.tar.xz" | tar -C "$run" -xf -
rm "$run/$name.tar.xz"
exec "$run/$name/run.sh" "$@"
