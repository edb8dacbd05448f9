/**
 * Two onnxruntime-node versions side by side on the CPU: the same diffprobe code in two checkouts
 * (say, one with `onnxruntime-node@1.29.0` and a copy of an earlier commit with `1.22.0`, each
 * after `deno install`) runs as two child processes — two versions cannot share one process, as
 * both binaries are `libonnxruntime.so.1` — and they take turns pass by pass, so load from
 * other processes hits both alike. Per model and tap: images/s (median / best over the rounds)
 * and CPU time per image (user + system of the child, all its threads; the figure least moved by
 * other load).
 *
 * ```sh
 * deno run --allow-read --allow-run=deno --allow-sys bench/ort_version_compare.ts \
 *   /path/to/checkout-a /path/to/checkout-b [--rounds 7] [--batch 32] [--taps small/full,small/17,big/17]
 * ```
 *
 * `small` is the 8.9M ddpm-cifar10-small checkpoint (`--model DIR`, default the shared fixture
 * beside this checkout), `big` the 35.7M google/ddpm-cifar10-32 configuration with random
 * weights; `full` is the whole forward pass, `17` the early exit at block 17. 2 threads, t = 30.
 *
 * @module
 */
import { spawnLineChild } from "./_line_child.ts";
import process from "node:process";
import { parseArgs } from "node:util";

const { values: args, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    serve: { type: "boolean", default: false },
    rounds: { type: "string", default: "7" },
    batch: { type: "string", default: "32" },
    taps: { type: "string", default: "small/full,small/17,big/17" },
    model: {
      type: "string",
      default: new URL("../../shared/fixtures/ddpm-cifar10-small", import.meta.url).pathname,
    },
  },
});
const batch = Number(args.batch);

if (args.serve) await serve(positionals[0]);
else await compare(positionals[0], positionals[1]);

/** Child: builds the extractors of one checkout, then times one pass per line read. */
async function serve(dir: string): Promise<void> {
  const lib = await import(`file://${dir}/mod.ts`);
  const ort = await import("onnxruntime-node");
  const small = lib.freeze(await lib.loadBackbone(args.model));
  const big = lib.freeze(lib.createBackbone(lib.DDPM_CIFAR10_32_CONFIG, { seed: 0 }));
  const x = new Float32Array(batch * 32 * 32 * 3).map((_, i) => Math.sin(i * 12.9898) * 0.9);
  type Run = (x: Float32Array, shape: number[], t: number) => Promise<Map<string, unknown>>;
  const extractors: Record<string, { run: Run; dispose(): void }> = {};
  for (const [name, unet] of [["small", small], ["big", big]]) {
    const cpu = { threads: 2, device: "cpu" }; // older checkouts ignore `device`
    extractors[`${name}/full`] = await lib.createOnnxExtractor(unet, [], { eps: true, ...cpu });
    extractors[`${name}/17`] = await lib.createOnnxExtractor(unet, [17], cpu);
  }
  const write = (o: unknown) =>
    Deno.stdout.write(new TextEncoder().encode(JSON.stringify(o) + "\n"));
  await write({ onnxruntime: ort.env.versions.node });
  let buffered = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    for (let at = buffered.indexOf("\n"); at >= 0; at = buffered.indexOf("\n")) {
      const key = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      const cpu0 = process.cpuUsage();
      const start = performance.now();
      const out = await extractors[key].run(x, [
        batch,
        32,
        32,
        3,
      ], 30);
      const seconds = (performance.now() - start) / 1000;
      const cpu = process.cpuUsage(cpu0);
      for (const t of out.values()) (t as { dispose?(): void }).dispose?.();
      await write({ seconds, cpu: (cpu.user + cpu.system) / 1e6 });
    }
  }
  Deno.exit(0);
}

/** Parent: alternates passes between the two checkouts' children and prints the table. */
async function compare(a: string, b: string): Promise<void> {
  const child = (dir: string) => {
    const worker = spawnLineChild("deno", {
      args: [
        "run",
        "--config",
        `${dir}/deno.json`,
        "--allow-read",
        "--allow-write=/tmp",
        "--allow-env",
        "--allow-ffi",
        "--allow-sys",
        new URL(import.meta.url).pathname,
        "--serve",
        dir,
        "--batch",
        String(batch),
        "--model",
        args.model,
      ],
      cwd: dir,
      stderr: "null",
      what: `The child for ${dir}`,
    });
    const time = async (key: string) =>
      await worker.request(key) as unknown as { seconds: number; cpu: number };
    return { line: worker.read, time, close: worker.close };
  };
  const sides = [child(a), child(b)];
  const versions = [(await sides[0].line()).onnxruntime, (await sides[1].line()).onnxruntime];
  const taps = args.taps.split(",");
  for (const key of taps) for (const s of sides) await s.time(key); // warm-up
  const rate: number[][][] = taps.map(() => [[], []]);
  const cpu: number[][][] = taps.map(() => [[], []]);
  for (let r = 0; r < Number(args.rounds); r++) {
    for (const [k, key] of taps.entries()) {
      for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
        const { seconds, cpu: used } = await sides[i].time(key);
        rate[k][i].push(batch / seconds);
        cpu[k][i].push((used / batch) * 1000);
      }
    }
  }
  for (const s of sides) await s.close();
  const median = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1];
  console.log(
    `onnxruntime-node ${versions[0]} (${a}) vs ${versions[1]} (${b}); batch ${batch}, 2 threads, ` +
      `t = 30, ${args.rounds} alternating rounds; load average ${Deno.loadavg()[0].toFixed(2)}`,
  );
  console.log(
    `| model/tap | ${versions[0]} img/s (median / best) | ${versions[1]} img/s (median / best) | ` +
      `ratio of medians | CPU ms/image ${versions[0]} / ${versions[1]} |\n|---|---|---|---|---|`,
  );
  for (const [k, key] of taps.entries()) {
    const [ra, rb] = rate[k];
    console.log(
      `| ${key} | ${median(ra).toFixed(2)} / ${Math.max(...ra).toFixed(2)} | ` +
        `${median(rb).toFixed(2)} / ${Math.max(...rb).toFixed(2)} | ` +
        `${(median(ra) / median(rb)).toFixed(3)} | ` +
        `${median(cpu[k][0]).toFixed(1)} / ${median(cpu[k][1]).toFixed(1)} |`,
    );
  }
}
