/**
 * Peak memory of loading the 35.7M-parameter google/ddpm-cifar10-32 configuration: saves a
 * randomly initialised copy (143 MB of float32 weights) to a temporary folder, then measures the
 * peak resident set (GNU time's %M) of a fresh process that loads it, minus that of the same
 * process that only starts tfjs, as a multiple of the weight bytes.
 *
 * ```sh
 * deno run --allow-read --allow-write=/tmp --allow-run=/usr/bin/time,deno --allow-env --allow-sys bench/load_memory.ts
 * ```
 */
import { createBackbone, DDPM_CIFAR10_32_CONFIG, loadBackbone, saveBackbone } from "../mod.ts";

/** Peak RSS in bytes of `deno run <this file> ...args`, measured by GNU time. */
async function peakRss(...args: string[]): Promise<number> {
  const child = await new Deno.Command("/usr/bin/time", {
    args: [
      "-f",
      "%M",
      Deno.execPath(),
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-sys",
      import.meta.filename!,
      ...args,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(child.stderr).trim().split("\n");
  return Number(lines.at(-1)) * 1024;
}

if (Deno.args[0] === "--child") {
  const tf = await import("@tensorflow/tfjs");
  await tf.ready();
  if (Deno.args[1]) (await loadBackbone(Deno.args[1])).dispose();
} else {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-35m-" });
  const unet = createBackbone(DDPM_CIFAR10_32_CONFIG, { seed: 0 });
  await saveBackbone(unet, dir);
  unet.dispose();
  const weightBytes = (await Deno.stat(`${dir}/diffusion_pytorch_model.safetensors`)).size;
  const base = await peakRss("--child");
  const loaded = await peakRss("--child", dir);
  const grew = loaded - base;
  console.log(
    `weight file ${(weightBytes / 1e6).toFixed(1)} MB; peak RSS ${(base / 1e6).toFixed(0)} MB ` +
      `starting tfjs, ${(loaded / 1e6).toFixed(0)} MB loading: loadBackbone needed ` +
      `${(grew / 1e6).toFixed(0)} MB = ${(grew / weightBytes).toFixed(2)}× the weight bytes`,
  );
  await Deno.remove(dir, { recursive: true });
}
