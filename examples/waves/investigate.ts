/**
 * Why does the probe lose to the raw-window baselines on 46035? This script takes one or more
 * pre-trained 1-D DDPMs (the `ddpm-1d` folders `deno task waves` saves) and measures, on the same
 * splits as the main experiment, how the probe's test MSE depends on
 *
 * - the tap: t and block;
 * - the pooling of the block output over time (`--pools 8,none`: 8 averaged steps, or every
 *   step of the block's resolution);
 * - the fitting: the LinearHead trained with AdamW, or solved in closed form by ridge regression
 *   on the standardised features (`LinearHead.fitRidge`, penalty chosen on the validation split,
 *   as `main.ts` does), which rules out under-training;
 * - and whether the features add anything to the raw window: ridge on [raw window, features].
 *
 * ```sh
 * deno task waves:investigate --backbone out/waves/ddpm-1d --out out/waves-investigate
 * ```
 *
 * Writes `<out>/investigation.json` and prints a table sorted by test MSE.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import {
  extractFeatures,
  freeze,
  LinearHead,
  loadBackbone,
  type Pooling,
  progressBar,
  tapBlock,
  useBackend,
} from "../../mod.ts";
import { errors } from "./baselines.ts";
import { prepareWaves, toSignal, WaveDataError, type WaveSplit } from "./prepare.ts";
import { checkReadable, checkWritable, fail, intFlag, intListFlag, parseCli } from "../_cli.ts";

const args = parseCli({
  name: "deno task waves:investigate",
  summary: "Why the wave probe loses: taps × pooling × fitting on pre-trained 1-D DDPMs.",
  flags: {
    backbone: {
      type: "string",
      multiple: true,
      value: "dir",
      help: "a ddpm-1d folder saved by `deno task waves` (repeatable)",
      defaultText: "(required)",
    },
    data: {
      type: "string",
      multiple: true,
      value: "path",
      help: "NDBC files or CSVs",
      defaultText: "the committed 46035 series",
    },
    "train-until": {
      type: "string",
      value: "year",
      help: "last training year",
      defaultText: "2008 for the committed data, else derived (as `deno task waves`)",
    },
    "val-until": {
      type: "string",
      value: "year",
      help: "last validation year",
      defaultText: "2011 for the committed data, else derived",
    },
    "test-from": {
      type: "string",
      value: "year",
      help: "first test year",
      defaultText: "2014 for the committed data, else derived",
    },
    out: { type: "string", default: "out/waves-investigate", value: "dir", help: "output folder" },
    length: { type: "string", default: "128", value: "hours", help: "input hours L (as trained)" },
    horizon: { type: "string", default: "6", value: "hours", help: "lead time h" },
    channels: {
      type: "string",
      default: "WVHT",
      value: "list",
      help: "input channels (as trained)",
    },
    ts: { type: "string", default: "1,10", value: "list", help: "noise levels" },
    blocks: { type: "string", default: "8,13,16,24", value: "list", help: "blocks" },
    pools: { type: "string", default: "8,none", value: "list", help: "poolings: k, none or mean" },
    "head-epochs": {
      type: "string",
      default: "60",
      value: "N",
      help: "AdamW epochs of the LinearHead (0: ridge only)",
    },
    quick: { type: "boolean", help: "thinned splits" },
  },
});
// Every flag is checked here, before any work.
if (!args.backbone?.length) {
  fail("--backbone is required (a ddpm-1d folder saved by `deno task waves`)");
}
const list = (s: string) => s.split(",").map((v) => v.trim()).filter(Boolean);
const L = intFlag("length", args.length, 8, 4096), H = intFlag("horizon", args.horizon, 1, 8760);
const ts = intListFlag("ts", args.ts, 0, 999);
const blockList = intListFlag("blocks", args.blocks, 1);
const pools: { label: string; pool: Pooling }[] = list(args.pools).map((p) => ({
  label: p,
  pool: p === "none" ? "none" : p === "mean" ? "mean" : { size: intFlag("pools", p, 1, L) },
}));
const epochs = intFlag("head-epochs", args["head-epochs"], 0);
for (const path of args.backbone) await checkReadable("backbone", path);
for (const path of args.data ?? []) await checkReadable("data", path);
await checkWritable("out", args.out);
for (const path of args.backbone) {
  const unet = await loadBackbone(path).catch((e) =>
    fail(`--backbone ${path}: ${(e as Error).message}`)
  );
  const last = unet.blocks.length;
  unet.dispose();
  const bad = blockList.find((b) => b > last);
  if (bad !== undefined) fail(`--blocks must be in [1, ${last}] for ${path}, got "${bad}"`);
}
const yearFlag = (name: "train-until" | "val-until" | "test-from") =>
  args[name] === undefined ? undefined : intFlag(name, args[name]!, 1900, 2200);
const data = await prepareWaves({
  data: args.data,
  length: L,
  horizon: H,
  channels: list(args.channels),
  quick: args.quick,
  years: {
    trainUntil: yearFlag("train-until"),
    valUntil: yearFlag("val-until"),
    testFrom: yearFlag("test-from"),
  },
}).catch((e) => e instanceof WaveDataError ? fail(e.message) : Promise.reject(e));
const C = data.channels.length;
const backend = await useBackend("auto");
console.error(
  `backend ${backend}; windows train ${data.train.n} / val ${data.val.n} / test ${data.test.n}`,
);

interface Row {
  backbone: string;
  t: number | null;
  block: number | null;
  name: string;
  pool: string;
  features: number;
  fit: "ridge" | "adamw";
  mse: number;
  maeMetres: number;
  lambda?: number;
}
const rows: Row[] = [];
const save = () =>
  Deno.writeTextFile(
    join(args.out, "investigation.json"),
    JSON.stringify({ length: L, horizon: H, channels: data.channels, rows }, null, 2) + "\n",
  );
const report = async (row: Row) => {
  rows.push(row);
  await save(); // after every row, so an interrupted run keeps what it measured
  console.error(
    `  ${row.backbone} t=${row.t} block ${row.block} ${row.name} pool ${row.pool} (${row.features}) ` +
      `${row.fit}: MSE ${row.mse.toFixed(5)}${row.lambda === undefined ? "" : ` λ=${row.lambda}`}`,
  );
};

/** Closed-form ridge (`LinearHead.fitRidge`) on [n, d] features; penalty chosen on validation. */
async function ridgeRow(
  f: { train: Float32Array; val: Float32Array; test: Float32Array; d: number },
): Promise<{ mse: number; mae: number; lambda: number }> {
  const t = (a: Float32Array, s: WaveSplit) => tf.tensor2d(a, [s.n, f.d]);
  const [x1, x2, x3] = [t(f.train, data.train), t(f.val, data.val), t(f.test, data.test)];
  const y1 = tf.tensor1d(data.train.targets), y2 = tf.tensor1d(data.val.targets);
  const head = new LinearHead({ inputShape: [f.d], outputs: 1, task: "regression" });
  const { penalty } = await head.fitRidge(x1, y1, {
    penalties: [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1],
    validationData: { x: x2, y: y2 },
  });
  const p = head.predict(x3);
  const e = errors(await p.data() as Float32Array, data.test.targets);
  tf.dispose([p, x1, x2, x3, y1, y2]);
  head.dispose();
  return { ...e, lambda: penalty };
}

/** Concatenates rows of two [n, a] and [n, b] matrices. */
function hstack(a: Float32Array, da: number, b: Float32Array, db: number): Float32Array {
  const n = a.length / da, out = new Float32Array(n * (da + db));
  for (let i = 0; i < n; i++) {
    out.set(a.subarray(i * da, (i + 1) * da), i * (da + db));
    out.set(b.subarray(i * db, (i + 1) * db), i * (da + db) + da);
  }
  return out;
}

// The raw-window reference, through the same ridge code.
const raw = {
  train: data.train.inputs,
  val: data.val.inputs,
  test: data.test.inputs,
  d: L * C,
};
{
  const r = await ridgeRow(raw);
  await report({
    backbone: "-",
    t: null,
    block: null,
    name: "raw window",
    pool: "-",
    features: raw.d,
    fit: "ridge",
    mse: r.mse,
    maeMetres: r.mae * data.wvhtRange,
    lambda: r.lambda,
  });
}

const signals = [data.train, data.val, data.test].map((s) => toSignal(s, L, C));
for (const path of args.backbone) {
  const unet = freeze(await loadBackbone(path));
  const label = path.replace(/\/ddpm-1d\/?$/, "").split("/").pop()!;
  for (const t of ts) {
    for (const { label: poolLabel, pool } of pools) {
      const taps = blockList.map((b) => tapBlock(t, b, { pool }));
      const bar = progressBar(`${label} t=${t} pool ${poolLabel}`, 3, { unit: "splits" });
      const features: Float32Array[][] = [];
      for (const [i, x] of signals.entries()) {
        const map = await extractFeatures(unet, taps, x, { batchSize: 256 });
        features.push(
          await Promise.all(taps.map(async (tap) => {
            const f = map.get(tap.key)!;
            const values = Float32Array.from(await f.data() as Float32Array);
            return values;
          })),
        );
        tf.dispose([...map.values()]);
        bar.update(i + 1);
      }
      bar.stop();
      for (const [k, tap] of taps.entries()) {
        const info = unet.block(tap.block);
        const [fTrain, fVal, fTest] = features.map((perSplit) => perSplit[k]);
        const d = fTrain.length / data.train.n;
        const base = {
          backbone: label,
          t,
          block: info.index,
          name: info.name,
          pool: poolLabel,
          features: d,
        };
        if (epochs > 0) {
          // The LinearHead as main.ts trains it (it standardises internally).
          const shape = (a: Float32Array, n: number) => tf.tensor2d(a, [n, d]);
          const [x1, x2, x3] = [
            shape(fTrain, data.train.n),
            shape(fVal, data.val.n),
            shape(fTest, data.test.n),
          ];
          const y1 = tf.tensor1d(data.train.targets), y2 = tf.tensor1d(data.val.targets);
          const head = new LinearHead({ inputShape: [d], outputs: 1, task: "regression", seed: 0 });
          await head.fit(x1, y1, {
            epochs,
            batchSize: 256,
            learningRate: 3e-3,
            seed: 0,
            validationData: { x: x2, y: y2 },
            patience: 5,
          });
          const p = head.predict(x3);
          const e = errors(await p.data() as Float32Array, data.test.targets);
          tf.dispose([p, x1, x2, x3, y1, y2]);
          head.dispose();
          await report({ ...base, fit: "adamw", mse: e.mse, maeMetres: e.mae * data.wvhtRange });
        }
        const r = await ridgeRow({ train: fTrain, val: fVal, test: fTest, d });
        await report({
          ...base,
          fit: "ridge",
          mse: r.mse,
          maeMetres: r.mae * data.wvhtRange,
          lambda: r.lambda,
        });
        const both = await ridgeRow({
          train: hstack(raw.train, raw.d, fTrain, d),
          val: hstack(raw.val, raw.d, fVal, d),
          test: hstack(raw.test, raw.d, fTest, d),
          d: raw.d + d,
        });
        await report({
          ...base,
          name: `raw window + ${info.name}`,
          features: raw.d + d,
          fit: "ridge",
          mse: both.mse,
          maeMetres: both.mae * data.wvhtRange,
          lambda: both.lambda,
        });
      }
    }
  }
  unet.dispose();
}
tf.dispose(signals);

console.log("backbone        t  block name                              pool  dims  fit     MSE");
for (const r of [...rows].sort((a, b) => a.mse - b.mse)) {
  console.log(
    `${r.backbone.padEnd(14)} ${String(r.t ?? "-").padStart(2)} ${
      String(r.block ?? "-").padStart(6)
    } ` +
      `${r.name.padEnd(33)} ${r.pool.padStart(5)} ${String(r.features).padStart(5)}  ${
        r.fit.padEnd(6)
      } ${r.mse.toFixed(5)}`,
  );
}
console.log(`wrote ${join(args.out, "investigation.json")}`);
