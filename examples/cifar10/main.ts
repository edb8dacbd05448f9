/**
 * The CIFAR-10 experiment: sweep t × block with a linear probe on class-balanced subsets, then
 * probe a frozen DDPM with an AttentionHead and a LinearHead on the full splits at (t = 30,
 * block 24) — the thesis's setting — and at the sweep's best point. All taps of a split come out
 * of one forward pass per distinct t.
 *
 * ```sh
 * deno task cifar10 --data path/to/cifar10 --backbone path/to/ddpm-cifar10-32 --out out/cifar10
 * ```
 *
 * `--data` is the official binary version (`data_batch_*.bin`, `test_batch.bin`) or an image
 * folder (`train/<class>/*.jpg`, `test/<class>/*.jpg`). Everything goes through the feature cache
 * (`<out>/cache` unless `--cache` says otherwise), so a second run extracts nothing.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  AttentionHead,
  type Backbone,
  balancedSubset,
  datasetChecksum,
  extractFeatures,
  type FeatureCache,
  freeze,
  imageBatches,
  type ImageDataset,
  LinearHead,
  loadBackbone,
  progressBar,
  readCifar10,
  resolveEngine,
  sweep,
  type Tap,
  tapBlock,
  useBackend,
} from "../../mod.ts";

const { values: args } = parseArgs({
  options: {
    data: { type: "string" },
    backbone: { type: "string" },
    out: { type: "string", default: "out/cifar10" },
    cache: { type: "string" },
    t: { type: "string", default: "30" },
    block: { type: "string", default: "24" },
    heads: { type: "string", default: "attention,linear" },
    "attention-pool": { type: "string", default: "4" },
    "attention-dim": { type: "string", default: "128" },
    "attention-layers": { type: "string", default: "2" },
    epochs: { type: "string", default: "15" },
    "attention-epochs": { type: "string", default: "15" },
    batch: { type: "string", default: "64" },
    "limit-train": { type: "string" },
    "limit-test": { type: "string" },
    "sweep-ts": { type: "string", default: "10,30,100,300" },
    "sweep-from": { type: "string", default: "13" },
    "sweep-train": { type: "string", default: "10000" },
    "sweep-test": { type: "string", default: "2000" },
    "no-sweep": { type: "boolean", default: false },
    backend: { type: "string", default: "auto" },
    engine: { type: "string", default: "auto" },
    help: { type: "boolean", default: false },
  },
});

if (args.help || !args.data || !args.backbone) {
  console.log(
    `Usage: deno task cifar10 --data <cifar10 dir> --backbone <diffusers folder> [--out out/cifar10]
  --t 30 --block 24            the probed tap (thesis: t = 30, block 24)
  --heads attention,linear     heads to train at the tap and at the sweep's best point
  --attention-pool 4           the AttentionHead sees the block map average-pooled to k×k tokens
  --attention-dim 128 --attention-layers 2   its width and depth (8 heads)
  --epochs 15 --attention-epochs 15
  --limit-train N --limit-test N   use a seeded, class-balanced subset (quick runs)
  --sweep-ts 10,30,100,300 --sweep-from 13   sweep t × blocks from 13 (mid_block) to the last
  --sweep-train 10000 --sweep-test 2000      sweep on class-balanced subsets
  --no-sweep  --cache <dir>  --backend auto|wasm|cpu|webgpu|tensorflow`,
  );
  Deno.exit(args.help ? 0 : 2);
}

const int = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`--${name} must be a whole number, got "${v}"`);
  }
  return n;
};

/** A seeded class-balanced subset of `n` samples (all when `n` is not given). */
const balanced = (ds: ImageDataset, n: number | undefined, seed: number): ImageDataset =>
  n === undefined ? ds : balancedSubset(ds, n, seed);

async function readSplit(
  dir: string,
  split: "train" | "test",
  cacheDir: string,
): Promise<ImageDataset> {
  const bar = progressBar(`read ${split}`, 0, { unit: "images" });
  const ds = await readCifar10(dir, split, {
    cacheDir,
    onProgress: (done, total) => bar.update(done, total),
  });
  bar.stop();
  return ds;
}

const backend = await useBackend(args.backend as "auto");
const out = args.out!;
await Deno.mkdir(out, { recursive: true });
const cache = args.cache ?? join(out, "cache");
const engine = await resolveEngine(args.engine as "auto");
console.error(`backend: ${backend}; extraction engine: ${engine}; feature cache: ${cache}`);

const train = balanced(
  await readSplit(args.data, "train", cache),
  args["limit-train"] ? int("limit-train", args["limit-train"]) : undefined,
  1,
);
const test = balanced(
  await readSplit(args.data, "test", cache),
  args["limit-test"] ? int("limit-test", args["limit-test"]) : undefined,
  2,
);
console.error(
  `train: ${train.size} images, test: ${test.size} images, ${train.classes.length} classes`,
);
const unet: Backbone = freeze(await loadBackbone(args.backbone));

/** Extracts the taps for a dataset through the cache, with a progress bar. */
async function features(
  ds: ImageDataset,
  taps: Tap[],
  phase: string,
): Promise<Map<string, tf.Tensor>> {
  const bar = progressBar(phase, ds.size, { unit: "images" });
  const batch = int("batch", args.batch);
  const result = await extractFeatures(unet, taps, imageBatches(ds, batch, { autoDispose: true }), {
    cache: cache as string | FeatureCache,
    dataKey: `cifar10:${phase.split(" ")[0]}:${ds.size}:${await datasetChecksum(ds)}`,
    total: ds.size,
    engine,
    onProgress: (done) => bar.update(done),
  });
  bar.stop();
  return result;
}

const t = int("t", args.t);
const block = /^\d+$/.test(args.block!) ? int("block", args.block) : args.block!;
const heads = args.heads!.split(",").map((h) => h.trim()).filter(Boolean);
for (const kind of heads) {
  if (kind !== "linear" && kind !== "attention") {
    throw new RangeError(`Unknown head "${kind}": expected linear or attention`);
  }
}
const pool = int("attention-pool", args["attention-pool"]);

let sweepRows: unknown[] = [];
let best: { t: number; block: number | null; name: string; metric: number } | null = null;
const extraction: { split: string; images: number; taps: string[]; seconds: number }[] = [];
const runs: {
  head: string;
  t: number;
  block: number | null;
  name: string;
  accuracy: number;
  seconds: number;
}[] = [];
/** Writes `<out>/results.json` with what is known so far (after the sweep and every head). */
async function writeResults(): Promise<void> {
  const results = {
    backend,
    backbone: args.backbone,
    train: train.size,
    test: test.size,
    runs,
    extraction,
    sweep: sweepRows,
    sweepBest: best,
  };
  await Deno.writeTextFile(join(out, "results.json"), JSON.stringify(results, null, 2) + "\n");
}

// 1. The sweep (linear probe, class-balanced subsets), so that its best point can be probed on
//    the full sets in the same passes as the thesis's tap.
if (!args["no-sweep"]) {
  const from = int("sweep-from", args["sweep-from"]);
  const blocks = unet.blocks.filter((b) => b.index! >= from).map((b) => b.index!);
  const ts = args["sweep-ts"]!.split(",").map((s) => int("sweep-ts", s));
  const sTrain = balanced(train, int("sweep-train", args["sweep-train"]), 3);
  const sTest = balanced(test, int("sweep-test", args["sweep-test"]), 4);
  console.error(
    `sweep: t ∈ {${ts}} × blocks ${blocks[0]}..${
      blocks.at(-1)
    } on ${sTrain.size}/${sTest.size} images`,
  );
  let bar = progressBar("sweep", 1);
  const result = await sweep(unet, {
    train: {
      data: () => imageBatches(sTrain, 64, { autoDispose: true }),
      labels: Array.from(sTrain.labels),
      dataKey: `cifar10:${await datasetChecksum(sTrain)}`,
      total: sTrain.size,
    },
    test: {
      data: () => imageBatches(sTest, 64, { autoDispose: true }),
      labels: Array.from(sTest.labels),
      dataKey: `cifar10:${await datasetChecksum(sTest)}`,
      total: sTest.size,
    },
  }, {
    ts,
    blocks,
    head: (inputShape) => new LinearHead({ inputShape, outputs: 10, seed: 0 }),
    fit: { epochs: int("epochs", args.epochs), batchSize: 256, learningRate: 1e-3, weightDecay: 0 },
    cache,
    engine,
    heatmap: join(out, "sweep.svg"),
    title: `Linear probe accuracy on CIFAR-10 (${sTrain.size} train / ${sTest.size} test)`,
    onProgress: (phase, done, total) => {
      if (done === 0 || (bar as { phase?: string }).phase !== phase) {
        bar.stop();
        bar = Object.assign(progressBar(phase, total ?? 0, { unit: "images" }), { phase });
      }
      bar.update(done, total);
    },
    onPoint: (r) =>
      console.error(`  t=${r.t} block ${r.block} ${r.name}: ${(r.metric * 100).toFixed(2)} %`),
  });
  bar.stop();
  sweepRows = result.rows;
  best = result.best;
  await writeResults();
  console.log(
    `sweep best: t=${result.best.t} block ${result.best.block} ${result.best.name}: ${
      (result.best.metric * 100).toFixed(2)
    } %`,
  );
}

// 2. Every head at the thesis's tap and at the sweep's best point, on the full splits. All taps
//    are extracted together: one forward pass per distinct t and split.
const points = [{ t, block: unet.block(block) }];
if (best && !(best.t === t && best.name === points[0].block.name)) {
  points.push({ t: best.t, block: unet.block(best.block ?? best.name) });
}
const tapFor = (point: (typeof points)[number], kind: string): Tap =>
  tapBlock(point.t, point.block.index ?? point.block.name, {
    pool: kind === "linear" ? "mean" : { size: pool },
  });
const taps = points.flatMap((point) => heads.map((kind) => tapFor(point, kind)));
if (taps.length > 0) {
  const timed = async (ds: ImageDataset, split: string) => {
    const start = performance.now();
    const map = await features(ds, taps, `${split} ${[...new Set(taps.map((p) => `t=${p.t}`))]}`);
    const seconds = (performance.now() - start) / 1000;
    extraction.push({ split, images: ds.size, taps: taps.map((p) => p.key), seconds });
    console.error(`${split}: ${taps.length} taps of ${ds.size} images in ${seconds.toFixed(0)} s`);
    return map;
  };
  const xTrain = await timed(train, "train");
  const xTest = await timed(test, "test");
  // Linear heads first (minutes), then the attention heads (much slower on a CPU).
  const order = [...heads].sort((a, b) => Number(a === "attention") - Number(b === "attention"));
  for (const kind of order) {
    for (const point of points) {
      const tap = tapFor(point, kind);
      const trainX = xTrain.get(tap.key)!, testX = xTest.get(tap.key)!;
      const start = performance.now();
      const epochs = int("epochs", kind === "linear" ? args.epochs : args["attention-epochs"]);
      const head = kind === "linear"
        ? new LinearHead({ inputShape: trainX.shape.slice(1), outputs: 10, seed: 0 })
        : new AttentionHead({
          inputShape: trainX.shape.slice(1),
          outputs: 10,
          seed: 0,
          dim: int("attention-dim", args["attention-dim"]),
          layers: int("attention-layers", args["attention-layers"]),
          heads: 8,
        });
      const label = `${kind} t=${point.t} block ${point.block.index}`;
      const bar = progressBar(`fit ${label}`, epochs, { unit: "epochs" });
      await head.fit(trainX, Array.from(train.labels), {
        epochs,
        batchSize: 256,
        learningRate: kind === "linear" ? 1e-3 : 3e-4,
        weightDecay: kind === "linear" ? 0 : 0.05,
        onEpoch: (log) => bar.update(log.epoch, undefined, `loss ${log.loss.toFixed(4)}`),
      });
      bar.stop();
      const { accuracy } = head.evaluate(testX, Array.from(test.labels));
      const seconds = (performance.now() - start) / 1000;
      const { index, name } = point.block;
      runs.push({ head: kind, t: point.t, block: index, name, accuracy, seconds });
      console.log(
        `${kind.padEnd(9)} t=${point.t} block ${index} ${name}: accuracy ${
          (accuracy * 100).toFixed(2)
        } % (fit + evaluation ${seconds.toFixed(0)} s)`,
      );
      await head.save(join(out, `head-${kind}-t${point.t}-b${index ?? name}`));
      head.dispose();
      await writeResults();
    }
  }
  tf.dispose([...xTrain.values(), ...xTest.values()]);
}

await writeResults();
console.log(`wrote ${join(out, "results.json")}`);
unet.dispose();
