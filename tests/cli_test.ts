/**
 * The example CLIs as a user meets them: spawned through `deno task` with bad input, each must
 * answer with the usage line, one `error:` line naming the flag and the value, exit code 2 and no
 * stack trace — before any work (each case returns in seconds, with no data read). `--help`
 * must list every flag with its default. Needs `--allow-run=deno`.
 */
import assert from "node:assert/strict";
import { type DenoRun, root, runDeno } from "./_run_deno.ts";

function task(...args: string[]): Promise<DenoRun> {
  return runDeno(["task", "-q", ...args]);
}

/** Asserts a usage error: exit 2, the usage line, one error line containing `expected`. */
function assertUsageError(
  result: { code: number; stderr: string },
  expected: string,
): void {
  assert.equal(result.code, 2, result.stderr);
  const lines = result.stderr.trim().split("\n");
  const error = lines.filter((l) => l.startsWith("error: "));
  assert.equal(error.length, 1, result.stderr);
  assert.ok(error[0].includes(expected), `expected "${expected}" in: ${error[0]}`);
  assert.ok(lines.some((l) => l.startsWith("Usage: ")), result.stderr);
  assert.ok(!/\bat .*\.ts:\d+/.test(result.stderr), `a stack trace: ${result.stderr}`);
  assert.ok(!result.stderr.includes("Uncaught"), result.stderr);
}

const CASES: [string[], string][] = [
  [["waves", "--steps", "abc"], '--steps must be a whole number ≥ 1, got "abc"'],
  [["waves", "--no-such-flag"], "Unknown option '--no-such-flag'"],
  [["waves", "--t"], "--t"],
  [["waves", "--block", "99"], '--block must be a whole number in [1, 25], got "99"'],
  [["waves", "--sweep-blocks", "8,40"], "--sweep-blocks must be a whole number in [1, 25]"],
  [["waves", "--pool", "zero"], "--pool must be a whole number"],
  [["waves", "--backend", "gpu"], "--backend must be one of auto, wasm, cpu, webgpu, tensorflow"],
  [["waves", "--length", "100"], "--length must be a multiple of 8"],
  [["waves", "--out", "/tmp/diffprobe-cli-test"], "no write permission there"],
  [["waves", "--data", "/diffprobe-no-such-file"], "--data /diffprobe-no-such-file"],
  [["waves:investigate"], "--backbone is required"],
  [["waves:investigate", "--backbone", "x", "--ts", "1,,2"], "--ts must be a comma-separated"],
  [["cifar10"], "--data is required (or try --demo)"],
  [["cifar10", "--demo", "--epochs=-1"], '--epochs must be a whole number ≥ 1, got "-1"'],
  [["cifar10", "--demo", "--epochs", "-1"], 'write a value that starts with "-" as --epochs=-1'],
  [["cifar10", "--demo", "--heads", "linear,mlp"], "--heads must be one of linear, attention"],
  [["cifar10", "--demo", "--engine", "gpu"], "--engine must be one of auto, onnx, tfjs"],
  [["cifar10", "--demo", "--block", "26"], "No block 26"],
  [["cifar10", "--demo", "--sweep-from", "30"], "--sweep-from must be a whole number in [1, 25]"],
  [["cifar10", "--demo", "--out", "/tmp/diffprobe-cli-test"], "no write permission there"],
  [["cifar10:download", "--bogus"], "Unknown option '--bogus'"],
  [["cifar10:download", "--out", "/tmp/diffprobe-cli-test"], "may write only under data/"],
  [["bench:compare", "--batch", "0"], '--batch must be a whole number in [1, 4096], got "0"'],
  [["cuda:check", "--rounds", "many"], '--rounds must be a whole number in [1, 1000], got "many"'],
];

for (const [args, expected] of CASES) {
  Deno.test(`deno task ${args.join(" ")} → exit 2: ${expected}`, async () => {
    assertUsageError(await task(...args), expected);
  });
}

Deno.test("--help lists every flag with its default and exits 0", async () => {
  const expected: Record<string, string[]> = {
    waves: ["--backend", "--seed", "--steps", "--sweep-blocks", "--verbose", "(default: 16)"],
    "waves:investigate": ["--backbone", "--pools", "(default: 8,none)"],
    cifar10: ["--batch", "--engine", "--demo", "--sweep-from", "(default: 64)", "mid_block"],
    "cifar10:download": ["--out", "(default: data)"],
  };
  for (const [name, flags] of Object.entries(expected)) {
    const { code, stdout, stderr } = await task(name, "--help");
    assert.equal(code, 0, stderr);
    for (const flag of flags) assert.ok(stdout.includes(flag), `${name} --help lacks ${flag}`);
    // every flag that takes a value shows its default (switches are off by default)
    const blocks = stdout.split(/\n(?= {2}--)/).slice(1).map((b) => b.split("\n\n")[0]);
    for (const block of blocks) {
      if (/^ {2}--[a-z-]+ {2}/.test(block)) continue; // a switch: no <value>
      assert.ok(/\((default: |required)/.test(block), `${name}: no default in "${block.trim()}"`);
    }
  }
});

Deno.test("missing permissions: one line each on stderr naming the permission, no Aborted lines", async () => {
  const script =
    `import { createBackbone, extractFeatures, freeze, tapBlock, tf, useBackend } from "./mod.ts";
console.log(await useBackend("auto"));
const unet = freeze(createBackbone({ _class_name: "UNet2DModel", sample_size: 8, block_out_channels: [8, 8],
  down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 4 }));
for (let i = 0; i < 2; i++) await extractFeatures(unet, [tapBlock(10, 2)], tf.zeros([1, 8, 8, 3]));
console.log("done");`;
  // read access to tests/ only (not node_modules), no --allow-ffi; the program comes on stdin
  const child = new Deno.Command("deno", {
    args: ["run", "-q", "--allow-read=tests", "-"],
    cwd: root,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout),
    stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.deepEqual(stdout.trim().split("\n"), ["cpu", "done"]);
  const lines = stderr.trim().split("\n");
  assert.equal(lines.filter((l) => l.includes("--allow-read=node_modules")).length, 1, stderr);
  assert.equal(lines.filter((l) => l.includes("--allow-ffi")).length, 1, stderr);
  assert.ok(!stderr.includes("Aborted"), stderr);
  assert.ok(!stderr.includes("Hi, looks like"), stderr);
});
