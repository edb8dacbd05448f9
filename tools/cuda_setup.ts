/**
 * Installs onnxruntime's CUDA provider for onnxruntime-node (opt-in; see `installCudaProvider`):
 * downloads npm `com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9` (179 MB) from
 * registry.npmjs.org, checks the tarball's integrity and the SHA-256 of
 * `libonnxruntime_providers_cuda.so` and `libonnxruntime_providers_shared.so`, moves them beside
 * onnxruntime-node's `libonnxruntime.so.1`, then reports what CUDA still lacks here, if anything.
 *
 * ```sh
 * deno task cuda:setup                      # from the registry
 * deno task cuda:setup --source pkg.tgz     # from a tarball already downloaded
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { cudaStatus, installCudaProvider } from "../mod.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: { source: { type: "string" }, force: { type: "boolean", default: false } },
});

let shown = -1;
const result = await installCudaProvider({
  source: args.source,
  force: args.force,
  onProgress(bytes, total) {
    const step = total ? Math.floor((bytes / total) * 10) : Math.floor(bytes / 20e6);
    if (step === shown) return;
    shown = step;
    console.error(
      total
        ? `  ${(bytes / 1e6).toFixed(0)} / ${(total / 1e6).toFixed(0)} MB`
        : `  ${(bytes / 1e6).toFixed(0)} MB`,
    );
  },
});
console.log(
  result.alreadyInstalled
    ? `CUDA provider already installed and verified in ${result.folder}`
    : `CUDA provider installed in ${result.folder} from ${result.source}`,
);
for (const f of result.files) console.log(`  ${f.name}  ${f.bytes} bytes  sha256 ${f.sha256}`);
const status = await cudaStatus();
console.log(
  status.available
    ? `CUDA is ready: ${status.gpu}, driver for CUDA ${status.driverCuda}, cuDNN ${status.cudnn}`
    : `CUDA cannot run yet on this machine: ${status.problems.join("; ")}`,
);
