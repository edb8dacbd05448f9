/**
 * The wave-height experiment: predict significant wave height (WVHT) `h` hours ahead from the
 * previous `L` hours at an NDBC station (default: the committed 46035 series), with a linear
 * probe on the features of a 1-D DDPM pre-trained on the training windows (and, with
 * `--pretrain-data`, on other stations' series before the validation years), against
 * persistence, ridge regression and a 3-layer MLP on the raw window — all on the same
 * chronological splits by year.
 *
 * ```sh
 * deno task waves            # the committed 46035 data, about 5½ min on 2 CPU cores
 * deno task waves --quick    # a smoke test, about a minute
 * deno task waves --data data/ndbc/44014 --out out/waves-44014   # split years derived
 * deno task waves --pretrain-data data/ndbc/44014 --pretrain-data data/ndbc/44005 --steps 3000
 * deno task waves --backbone out/waves/ddpm-1d --horizon 24 --out out/waves-h24
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import {
  type Backbone,
  createBackbone,
  extractFeatures,
  freeze,
  heatmapSvg,
  LinearHead,
  linePlotSvg,
  loadBackbone,
  MLPHead,
  type Pooling,
  progressBar,
  saveBackbone,
  sweep,
  tapBlock,
  trainDiffusion,
  type UNet1DConfig,
  useBackend,
  yearSplitBounds,
} from "../../mod.ts";
import { errors, persistence } from "./baselines.ts";
import {
  BACKENDS,
  checkReadable,
  checkWritable,
  choiceFlag,
  fail,
  intFlag,
  intListFlag,
  parseCli,
} from "../_cli.ts";
import {
  prepareWaves,
  pretrainInputs,
  type PretrainSource,
  toSignal,
  WaveDataError,
  type WaveDataOptions,
  yearRange,
} from "./prepare.ts";

const args = parseCli({
  name: "deno task waves",
  summary: "Wave height h hours ahead: a linear probe on a pre-trained 1-D DDPM against baselines.",
  flags: {
    data: {
      type: "string",
      multiple: true,
      value: "path",
      help: "NDBC .txt files, a folder of them, or CSVs (repeatable)",
      defaultText: "the committed examples/waves/data/46035_hourly.csv.gz",
    },
    station: {
      type: "string",
      value: "id",
      help: "station id for titles and results",
      defaultText: "the id the --data paths name, e.g. 46035h2017.txt or a folder 44014/",
    },
    "train-until": {
      type: "string",
      value: "year",
      help: "last training year",
      defaultText: "2008 for the committed data, else derived from the data's years",
    },
    "val-until": {
      type: "string",
      value: "year",
      help: "last validation year (validation starts after --train-until)",
      defaultText: "2011 for the committed data, else derived",
    },
    "test-from": {
      type: "string",
      value: "year",
      help: "first test year (test runs to the end of the data)",
      defaultText: "2014 for the committed data, else derived",
    },
    "pretrain-data": {
      type: "string",
      multiple: true,
      value: "path",
      help: "pre-train the DDPM also on this station's files, folder or CSV (repeatable; " +
        "only hours before the target's validation years are used)",
      defaultText: "none, the target's training windows only",
    },
    backbone: {
      type: "string",
      value: "dir",
      help: "reuse a ddpm-1d folder saved by an earlier run instead of pre-training",
      defaultText: "none, pre-train one",
    },
    out: { type: "string", default: "out/waves", value: "dir", help: "output folder" },
    quick: { type: "boolean", help: "a smoke test on thinned splits (about a minute)" },
    length: { type: "string", default: "128", value: "hours", help: "input hours L" },
    horizon: { type: "string", default: "6", value: "hours", help: "lead time h" },
    channels: {
      type: "string",
      default: "WVHT",
      value: "list",
      help: "input channels, e.g. WVHT,DPD,APD,WSPD (the target is always WVHT)",
    },
    "interpolate-gaps": {
      type: "string",
      default: "0",
      value: "hours",
      help: "fill missing runs up to this long linearly (0: strict, no window spans a gap)",
    },
    steps: {
      type: "string",
      value: "N",
      help: "diffusion pre-training steps",
      defaultText: "1000; 20 with --quick",
    },
    t: { type: "string", default: "10", value: "t", help: "noise level of the probed tap" },
    block: { type: "string", default: "16", value: "i", help: "block of the probed tap" },
    pool: {
      type: "string",
      default: "none",
      value: "none|mean|k",
      help: "pooling over time: every step, one mean vector, or k averaged steps",
    },
    "sweep-ts": {
      type: "string",
      value: "list",
      help: "noise levels of the t × block sweep",
      defaultText: "1,10,50; 10,100 with --quick",
    },
    "sweep-blocks": {
      type: "string",
      value: "list",
      help: "blocks of the sweep (1 … the model's block count)",
      defaultText: "8,13,16,24; 13,16 with --quick",
    },
    backend: {
      type: "string",
      default: "auto",
      value: "name",
      help: "TensorFlow.js backend: auto, wasm, cpu, webgpu or tensorflow",
    },
    seed: { type: "string", default: "0", value: "N", help: "seed of every random draw" },
    "adamw-diagnostic": {
      type: "boolean",
      help: "also train the probe's layer by AdamW (60 epochs) and report it as a diagnostic",
    },
    verbose: { type: "boolean", help: "say why faster backends were skipped" },
  },
  notes: [
    "Writes <out>/results.json, predictions.svg, predictions-all.svg, sweep.svg, pretrain_loss.svg",
    "and the pre-trained model in <out>/ddpm-1d (not with --backbone). The task may write only under",
    'out/; the task reads --data and --pretrain-data under data/ (see the README, "Permissions").',
  ],
});
// Every flag is checked here, before any work.
const quick = args.quick;
const L = intFlag("length", args.length, 8, 4096), H = intFlag("horizon", args.horizon, 1, 8760);
const channels = args.channels.split(",").map((c) => c.trim());
if (channels.some((c) => !/^[A-Za-z][A-Za-z0-9_]*$/.test(c))) {
  fail(`--channels must be NDBC column names such as WVHT,DPD, got "${args.channels}"`);
}
if (channels[0] !== "WVHT") channels.unshift("WVHT");
const seed = intFlag("seed", args.seed, 0, 2 ** 32 - 1);
const maxGap = intFlag("interpolate-gaps", args["interpolate-gaps"], 0, 8760);
const steps = args.steps !== undefined ? intFlag("steps", args.steps, 1) : quick ? 20 : 1000;
const t = intFlag("t", args.t, 0, 999);
/** "none" (every time step of the block), "mean" (one vector) or k (average to k steps). */
const pool: Pooling = args.pool === "none" || args.pool === "mean"
  ? args.pool
  : { size: intFlag("pool", args.pool, 1, L) };
const sweepTs = intListFlag("sweep-ts", args["sweep-ts"] ?? (quick ? "10,100" : "1,10,50"), 0, 999);
const backendName = choiceFlag("backend", args.backend, BACKENDS);
const out = args.out;
const yearFlag = (name: "train-until" | "val-until" | "test-from") =>
  args[name] === undefined ? undefined : intFlag(name, args[name]!, 1900, 2200);
const givenYears = {
  trainUntil: yearFlag("train-until"),
  valUntil: yearFlag("val-until"),
  testFrom: yearFlag("test-from"),
};
if (args.station !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(args.station)) {
  fail(`--station must be letters, digits, _ or - (at most 32), got "${args.station}"`);
}
if (args.backbone !== undefined && args["pretrain-data"]?.length) {
  fail("--backbone reuses a pre-trained DDPM, so --pretrain-data cannot be used with it");
}
if (args.backbone !== undefined && args.steps !== undefined) {
  fail("--backbone reuses a pre-trained DDPM, so --steps cannot be used with it");
}
for (const path of args.data ?? []) await checkReadable("data", path);
for (const path of args["pretrain-data"] ?? []) await checkReadable("pretrain-data", path);
if (args.backbone !== undefined) await checkReadable("backbone", args.backbone);
await checkWritable("out", out);
const C = channels.length;
const config: UNet1DConfig = {
  _class_name: "DiffprobeUNet1DModel",
  in_channels: C,
  out_channels: C,
  sample_size: L,
  block_out_channels: [16, 32, 32, 32],
  down_block_types: ["DownBlock1D", "DownBlock1D", "AttnDownBlock1D", "DownBlock1D"],
  up_block_types: ["UpBlock1D", "AttnUpBlock1D", "UpBlock1D", "UpBlock1D"],
  layers_per_block: 2,
  norm_num_groups: 8,
  attention_head_dim: 16,
  dropout: 0.1,
};
if (L % 8 !== 0) fail(`--length must be a multiple of 8 (the UNet halves it 3 times), got "${L}"`);
const started = performance.now();
const backend = await useBackend(backendName, { verbose: args.verbose });
const initial = args.backbone === undefined
  ? createBackbone(config, { seed })
  : await loadBackbone(args.backbone).catch((e) =>
    fail(`--backbone ${args.backbone}: ${(e as Error).message}`)
  );
if (args.backbone !== undefined) {
  const c = initial.config as Partial<UNet1DConfig>;
  if (c.sample_size !== L || c.in_channels !== C) {
    fail(
      `--backbone ${args.backbone} was trained on ${c.in_channels} channel(s) × ${c.sample_size} h, ` +
        `this run has ${C} × ${L} (--channels, --length)`,
    );
  }
}
const blockCount = initial.blocks.length;
const block = intFlag("block", args.block, 1, blockCount);
const sweepBlocks = intListFlag(
  "sweep-blocks",
  args["sweep-blocks"] ?? (quick ? "13,16" : "8,13,16,24"),
  1,
  blockCount,
);
console.error(`backend: ${backend}`);

// ---- data ---------------------------------------------------------------------------------
const dataOptions: WaveDataOptions = {
  data: args.data,
  length: L,
  horizon: H,
  channels,
  interpolateGaps: maxGap,
  quick,
  years: givenYears,
  station: args.station,
};
/** Bad data for the flags (an empty split, several stations in --data) → usage and exit 2. */
const orFail = <T>(e: unknown): T => {
  if (e instanceof WaveDataError) fail(e.message);
  throw e;
};
const data = await prepareWaves(dataOptions).catch(orFail<never>);
const { scaler, wvhtRange, years } = data;
const station = data.station ?? "(unnamed station)";
const [tr, va, te] = [data.train, data.val, data.test];
const [train, val, test] = [tr.windows, va.windows, te.windows];
const trainYears = `≤${years.trainUntil}`,
  valYears = yearRange(years.trainUntil + 1, years.valUntil);
const testYears = yearRange(years.testFrom, years.testUntil);
console.error(
  `station ${station}; split years (${
    Object.entries(data.yearSources).map(([k, v]) => `${k} ${v}`).join(", ")
  }): train ${trainYears}, validation ${valYears}, test ${testYears}`,
);
console.error(
  `windows (L=${L}, h=${H}, channels ${channels}): train ${train.size} (${trainYears}), val ${val.size} (${valYears}), ` +
    `test ${test.size} (${testYears}); ${data.straddling} straddle a boundary`,
);

type Method = { name: string; mse: number; mseMetres2: number; maeMetres: number; seconds: number };
const methods: Method[] = [];
const predictions = new Map<string, Float32Array>();
function record(name: string, pred: Float32Array, since: number) {
  const { mse, mae } = errors(pred, te.targets);
  methods.push({
    name,
    mse,
    mseMetres2: mse * wvhtRange * wvhtRange,
    maeMetres: mae * wvhtRange,
    seconds: (performance.now() - since) / 1000,
  });
  predictions.set(name, pred);
  console.error(
    `${name}: test MSE ${mse.toFixed(5)} (normalised), MAE ${(mae * wvhtRange).toFixed(3)} m`,
  );
}

// ---- baselines ----------------------------------------------------------------------------
let since = performance.now();
record("persistence", persistence(te.inputs, test.size, L, C), since);
since = performance.now();
/** Closed-form ridge regression on standardised inputs, the penalty chosen on validation. */
async function ridgePredictions(xTrain: tf.Tensor, xVal: tf.Tensor, xTest: tf.Tensor) {
  const head = new LinearHead({
    inputShape: xTrain.shape.slice(1),
    outputs: 1,
    task: "regression",
    seed,
  });
  const yTrain = tf.tensor1d(tr.targets), yVal = tf.tensor1d(va.targets);
  const { penalty } = await head.fitRidge(xTrain, yTrain, {
    validationData: { x: xVal, y: yVal },
  });
  const p = head.predict(xTest);
  const pred = Float32Array.from(await p.data());
  tf.dispose([p, yTrain, yVal]);
  head.dispose();
  return { pred, penalty };
}
const flat = (a: Float32Array, n: number) => tf.tensor2d(a, [n, L * C]);
const [rawTrain, rawVal, rawTest] = [
  flat(tr.inputs, train.size),
  flat(va.inputs, val.size),
  flat(te.inputs, test.size),
];
record("linear", (await ridgePredictions(rawTrain, rawVal, rawTest)).pred, since);

async function fitRegression(
  make: (inputShape: number[]) => LinearHead<"regression"> | MLPHead<"regression">,
  xTrain: tf.Tensor,
  xVal: tf.Tensor,
  xTest: tf.Tensor,
  label: string,
  epochs: number,
  lr: number,
): Promise<Float32Array> {
  const head = make(xTrain.shape.slice(1));
  const yTrain = tf.tensor1d(tr.targets), yVal = tf.tensor1d(va.targets);
  const bar = progressBar(`fit ${label}`, epochs, { unit: "epochs" });
  await head.fit(xTrain, yTrain, {
    epochs,
    batchSize: 256,
    learningRate: lr,
    seed,
    validationData: { x: xVal, y: yVal },
    patience: 5,
    onEpoch: (log) => bar.update(log.epoch, undefined, `val ${log.valLoss?.toFixed(5)}`),
  });
  bar.stop();
  const p = head.predict(xTest);
  const pred = Float32Array.from(await p.data());
  tf.dispose([p, yTrain, yVal]);
  head.dispose();
  return pred;
}

since = performance.now();
record(
  "mlp",
  await fitRegression(
    (inputShape) =>
      new MLPHead({ inputShape, outputs: 1, task: "regression", hidden: [256, 128], seed }),
    rawTrain,
    rawVal,
    rawTest,
    "mlp",
    quick ? 5 : 60,
    1e-3,
  ),
  since,
);
tf.dispose([rawTrain, rawVal, rawTest]);

// ---- the probe: pre-train a 1-D DDPM, freeze it, linear head on one tap --------------------
since = performance.now();
const [xTrain, xVal, xTest] = [tr, va, te].map((split) => toSignal(split, L, C));
/** What the DDPM was pre-trained on (or the reused backbone). */
let pretraining: {
  backbone?: string;
  steps?: number;
  windows?: number;
  target?: { station: string; windows: number; years: string };
  extra?: PretrainSource[];
};
let unet: Backbone;
if (args.backbone !== undefined) {
  unet = freeze(initial);
  pretraining = { backbone: args.backbone };
  console.error(`reusing the pre-trained DDPM in ${args.backbone} (no pre-training)`);
} else {
  const extraSources = args["pretrain-data"] ?? [];
  const extra = await pretrainInputs(extraSources, {
    length: L,
    channels: data.channels,
    scaler,
    before: yearSplitBounds(years).trainEnd as number,
    interpolateGaps: maxGap,
    quick,
  }).catch(orFail<never>);
  for (const s of extra.sources) {
    console.error(
      `pre-training also on ${s.station ?? s.path}: ${s.windows} windows, ${
        s.from?.slice(0, 10)
      } to ${s.until?.slice(0, 10)} (${s.outOfRange} left out: beyond the target's training range)`,
    );
  }
  const xPretrain = extra.n === 0 ? xTrain : tf.tidy(() =>
    tf.concat([
      xTrain,
      tf.sub(tf.mul(tf.tensor3d(extra.inputs, [extra.n, L, C]), 2), 1),
    ])
  );
  pretraining = {
    steps,
    windows: xPretrain.shape[0],
    target: { station, windows: train.size, years: trainYears },
    extra: extra.sources,
  };
  const bar = progressBar("pre-train DDPM", steps, { unit: "steps" });
  const trained = await trainDiffusion(initial, xPretrain, {
    steps,
    batchSize: 32,
    learningRate: 5e-4,
    warmupSteps: Math.min(200, Math.floor(steps / 10)),
    seed,
    lossPlot: join(out, "pretrain_loss.svg"),
    onStep: ({ step, loss }) => bar.update(step, undefined, `loss ${loss.toFixed(4)}`),
  });
  bar.stop();
  if (xPretrain !== xTrain) xPretrain.dispose();
  unet = freeze(trained.ema);
  await saveBackbone(unet, join(out, "ddpm-1d"));
}
const pretrainSeconds = (performance.now() - since) / 1000;
console.error(
  `pre-trained ${unet.parameterCount()} parameters on ${
    pretraining.windows ?? "(reused)"
  } windows in ${pretrainSeconds.toFixed(0)} s`,
);

since = performance.now();
const tap = tapBlock(t, block, { pool, seed });
const feats = async (x: tf.Tensor, phase: string) => {
  const b = progressBar(`extract ${phase}`, x.shape[0]);
  const f = await extractFeatures(unet, [tap], x, {
    batchSize: 256,
    onProgress: (d) => b.update(d),
  });
  b.stop();
  return f.get(tap.key)!;
};
const [fTrain, fVal, fTest] = [
  await feats(xTrain, "train"),
  await feats(xVal, "val"),
  await feats(xTest, "test"),
];
// The probe is one linear layer fitted like the "linear" baseline (closed-form ridge, penalty
// chosen on validation), so the two differ only in their inputs: DDPM features or the raw window.
const probeRidge = await ridgePredictions(fTrain, fVal, fTest);
record("probe", probeRidge.pred, since);
methods[methods.length - 1].seconds += pretrainSeconds;
// With --adamw-diagnostic: the same layer trained by AdamW instead (as `fit` does), to compare.
const diagnostics: Method[] = [];
if (args["adamw-diagnostic"]) {
  since = performance.now();
  const adamw = errors(
    await fitRegression(
      (inputShape) => new LinearHead({ inputShape, outputs: 1, task: "regression", seed }),
      fTrain,
      fVal,
      fTest,
      `probe (AdamW) t=${t} b${block}`,
      quick ? 5 : 60,
      quick ? 1e-2 : 3e-3,
    ),
    te.targets,
  );
  diagnostics.push({
    name: "probe, AdamW-trained",
    mse: adamw.mse,
    mseMetres2: adamw.mse * wvhtRange * wvhtRange,
    maeMetres: adamw.mae * wvhtRange,
    seconds: (performance.now() - since) / 1000,
  });
  console.error(`probe (AdamW, not closed form): test MSE ${adamw.mse.toFixed(5)}`);
}
tf.dispose([fTrain, fVal, fTest]);

// ---- sweep ---------------------------------------------------------------------------------
const yTrain = tf.tensor1d(tr.targets), yTest = tf.tensor1d(te.targets);
const swept = await sweep(unet, {
  train: { data: xTrain, labels: yTrain },
  test: { data: xTest, labels: yTest },
}, {
  ts: sweepTs,
  blocks: sweepBlocks,
  pool,
  seed,
  batchSize: 256,
  // Closed-form ridge at every point too, with a fixed small penalty (no validation split here).
  head: (inputShape) => new LinearHead({ inputShape, outputs: 1, task: "regression", seed }),
  fit: { method: "ridge", penalties: [1e-4] },
  metric: "mse",
  onPoint: (r) =>
    console.error(`  sweep t=${r.t} block ${r.block} ${r.name}: MSE ${r.metric.toFixed(5)}`),
});
tf.dispose([yTrain, yTest, xTrain, xVal, xTest]);

// ---- outputs -------------------------------------------------------------------------------
// Three weeks of the test period: observed, the probe and the best baseline in predictions.svg,
// every method in predictions-all.svg. Missing hours (no window) break the lines.
const from = test.targetTimes[0], until = from + 21 * 24 * 3600e3;
let stretch = 0;
while (stretch < test.size && test.targetTimes[stretch] < until) stretch++;
const times = Array.from({ length: stretch }, (_, i) => test.targetTimes[i]);
const steps1 = times.slice(1).map((x, i) => x - times[i]).sort((a, b) => a - b);
const step = steps1[Math.floor(steps1.length / 2)] ?? 3600e3;
const inMetres = (a: ArrayLike<number>) =>
  Array.from({ length: stretch }, (_, i) => a[i] * wvhtRange + scaler.min.WVHT);
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const bestBaseline = methods.filter((m) => m.name !== "probe").sort((a, b) => a.mse - b.mse)[0];
const label = (name: string) =>
  name === "probe"
    ? `probe (t = ${t}, block ${block})`
    : name === "linear"
    ? "ridge (linear)"
    : name;
const series = (names: string[]) => [
  { name: "observed", x: times, y: inMetres(te.targets), color: "#222222" },
  ...names.map((m) => ({ name: label(m), x: times, y: inMetres(predictions.get(m)!) })),
];
const plotOptions = (what: string) => ({
  title: `Wave height ${H} h ahead at station ${station}, ${what}: test windows ${day(from)} to ${
    day(times[stretch - 1])
  } (UTC)`,
  xType: "time" as const,
  xLabel: "target time (UTC)",
  yLabel: "significant wave height (m)",
  width: 900,
  breakGaps: 1.5 * step,
});
await Deno.writeTextFile(
  join(out, "predictions.svg"),
  await linePlotSvg(
    series(["probe", bestBaseline.name]),
    plotOptions(`probe and best baseline`),
  ),
);
await Deno.writeTextFile(
  join(out, "predictions-all.svg"),
  await linePlotSvg(
    series(["probe", "linear", "mlp", "persistence"]),
    plotOptions("every method"),
  ),
);
await Deno.writeTextFile(
  join(out, "sweep.svg"),
  await heatmapSvg(
    swept.rows.map((r) => ({ t: r.t, block: `${r.block} ${r.name}`, value: r.metric })),
    {
      title:
        `Linear probe test MSE by t and block at station ${station}, h = ${H} h (lower is better)`,
      valueLabel: "MSE (normalised)",
      higherIsBetter: false,
      digits: 4,
    },
  ),
);
const seconds = (performance.now() - started) / 1000;
const results = {
  data: args.data ?? "examples/waves/data/46035_hourly.csv.gz",
  station: data.station ?? null,
  years: { ...years, sources: data.yearSources },
  pretraining,
  settings: {
    length: L,
    horizon: H,
    channels,
    interpolateGaps: maxGap,
    steps,
    t,
    block,
    pool: args.pool,
    quick,
    seed,
    backend,
  },
  windows: { train: train.size, val: val.size, test: test.size },
  normalisation: { wvhtMin: scaler.min.WVHT, wvhtMax: scaler.max.WVHT },
  methods: methods.map(({ name, mse, mseMetres2, maeMetres, seconds }) => ({
    name,
    mse,
    mseMetres2,
    maeMetres,
    seconds,
  })),
  /** With --adamw-diagnostic: the probe's layer trained by AdamW, not solved in closed form. */
  diagnostics,
  sweep: swept.rows.map(({ t, block, name, metric }) => ({ t, block, name, mse: metric })),
  sweepBest: {
    t: swept.best.t,
    block: swept.best.block,
    name: swept.best.name,
    mse: swept.best.metric,
  },
  seconds,
};
await Deno.writeTextFile(join(out, "results.json"), JSON.stringify(results, null, 2) + "\n");

console.log(
  `\nWave height ${H} h ahead at station ${station} from ${L} h of ${channels} (test ${testYears}, ${test.size} windows)`,
);
console.log("method                MSE (norm.)   MSE (m²)   MAE (m)");
for (const m of [...methods, ...diagnostics].sort((a, b) => a.mse - b.mse)) {
  console.log(
    `${m.name.padEnd(21)} ${m.mse.toFixed(5).padStart(10)} ${
      m.mseMetres2.toFixed(4).padStart(10)
    } ${m.maeMetres.toFixed(3).padStart(9)}`,
  );
}
console.log(
  `sweep best: t=${swept.best.t} block ${swept.best.block} (${swept.best.name}) MSE ${
    swept.best.metric.toFixed(5)
  }`,
);
console.log(
  `wrote ${out}/results.json, predictions.svg, predictions-all.svg, sweep.svg${
    args.backbone === undefined ? ", pretrain_loss.svg, ddpm-1d/" : ""
  } in ${seconds.toFixed(0)} s`,
);
unet.dispose();
