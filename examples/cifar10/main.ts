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

const DEMO = {
  data: new URL("./demo/images", import.meta.url).pathname,
  backbone: new URL("./demo/ddpm-cifar10-small-f16", import.meta.url).pathname,
};
const REPO = new URL("../../", import.meta.url).pathname;
/** A path as results and tables show it: relative to the repository when inside it. */
const shown = (path: string): string => path.startsWith(REPO) ? path.slice(REPO.length) : path;
const args = parseCli({
  name: "deno task cifar10",
  summary: "Probe a frozen DDPM on CIFAR-10: a t × block sweep, then linear and attention heads.",
  flags: {
    demo: {
      type: "boolean",
      help: "run offline on the committed sample (500 / 200 images) and float16 checkpoint",
    },
    data: {
      type: "string",
      value: "dir",
      help: "CIFAR-10: the official binaries or an image folder (train/<class>/*.jpg)",
      defaultText: "(required; with --demo: the committed sample)",
    },
    backbone: {
      type: "string",
      value: "dir",
      help: "a diffusers UNet2DModel folder (config.json + safetensors)",
      defaultText: "(required; with --demo: the committed ddpm-cifar10-small-f16)",
    },
    out: {
      type: "string",
      value: "dir",
      help: "output folder",
      defaultText: "out/cifar10; out/cifar10-demo with --demo",
    },
    cache: { type: "string", value: "dir", help: "feature cache", defaultText: "<out>/cache" },
    t: { type: "string", default: "30", value: "t", help: "noise level of the probed tap" },
    block: {
      type: "string",
      default: "24",
      value: "i|name",
      help: "block of the probed tap, by number or diffusers name",
    },
    heads: {
      type: "string",
      default: "attention,linear",
      value: "list",
      help: "heads to train at the tap and at the sweep's best point",
    },
    "attention-pool": {
      type: "string",
      default: "4",
      value: "k",
      help: "the AttentionHead sees the block map average-pooled to k×k tokens",
    },
    "attention-dim": { type: "string", default: "128", value: "N", help: "AttentionHead width" },
    "attention-layers": { type: "string", default: "2", value: "N", help: "its depth (8 heads)" },
    epochs: { type: "string", default: "15", value: "N", help: "epochs of the linear heads" },
    "attention-epochs": {
      type: "string",
      value: "N",
      help: "epochs of the attention heads",
      defaultText: "15; 10 with --demo",
    },
    batch: { type: "string", default: "64", value: "N", help: "images per extraction batch" },
    "limit-train": {
      type: "string",
      value: "N",
      help: "use a seeded, class-balanced training subset",
      defaultText: "all",
    },
    "limit-test": {
      type: "string",
      value: "N",
      help: "use a seeded, class-balanced test subset",
      defaultText: "all",
    },
    "sweep-ts": {
      type: "string",
      value: "list",
      help: "noise levels of the sweep",
      defaultText: "10,30,100,300; 10,30,100 with --demo",
    },
    "sweep-from": {
      type: "string",
      value: "i",
      help: "sweep blocks from this one to the model's last",
      defaultText: "the model's mid_block: 13 in the DDPM CIFAR-10 UNets",
    },
    "sweep-train": {
      type: "string",
      value: "N",
      help: "class-balanced training subset of the sweep",
      defaultText: "10000; all with --demo",
    },
    "sweep-test": {
      type: "string",
      value: "N",
      help: "class-balanced test subset of the sweep",
      defaultText: "2000; all with --demo",
    },
    "no-sweep": { type: "boolean", help: "skip the sweep (heads at --t/--block only)" },
    backend: {
      type: "string",
      default: "auto",
      value: "name",
      help: "TensorFlow.js backend: auto, wasm, cpu, webgpu or tensorflow",
    },
    engine: {
      type: "string",
      default: "auto",
      value: "name",
      help: "extraction engine: auto, onnx (onnxruntime-node, needs --allow-ffi) or tfjs",
    },
    verbose: { type: "boolean", help: "say why faster backends were skipped" },
  },
  notes: [
    "Writes <out>/results.json (after the sweep and after every head), <out>/sweep.svg and the",
    "trained heads. The task reads inside the repository and data/ and writes under out/; see",
    'the README ("Permissions") to use other folders.',
  ],
});
// Every flag is checked here, before any data is read or any model is run.
const demo = args.demo;
const dataDir = args.data ?? (demo ? DEMO.data : fail("--data is required (or try --demo)"));
const backboneDir = args.backbone ??
  (demo ? DEMO.backbone : fail("--backbone is required (or try --demo)"));
const out = args.out ?? (demo ? "out/cifar10-demo" : "out/cifar10");
const cache = args.cache ?? join(out, "cache");
const t = intFlag("t", args.t, 0, 999);
const heads = args.heads.split(",").map((h) => h.trim()).filter(Boolean)
  .map((h) => choiceFlag("heads", h, ["linear", "attention"] as const));
const pool = intFlag("attention-pool", args["attention-pool"], 1, 64);
const attentionDim = intFlag("attention-dim", args["attention-dim"], 8, 4096);
if (attentionDim % 8 !== 0) {
  fail(`--attention-dim must be a multiple of 8 (8 heads), got "${attentionDim}"`);
}
const attentionLayers = intFlag("attention-layers", args["attention-layers"], 1, 64);
const epochs = intFlag("epochs", args.epochs, 1);
const attentionEpochs = intFlag(
  "attention-epochs",
  args["attention-epochs"] ?? (demo ? "10" : "15"),
  1,
);
const batch = intFlag("batch", args.batch, 1, 65536);
const limitTrain = args["limit-train"] === undefined
  ? undefined
  : intFlag("limit-train", args["limit-train"], 10);
const limitTest = args["limit-test"] === undefined
  ? undefined
  : intFlag("limit-test", args["limit-test"], 10);
const sweepTs = intListFlag(
  "sweep-ts",
  args["sweep-ts"] ?? (demo ? "10,30,100" : "10,30,100,300"),
  0,
  999,
);
const sweepTrain = args["sweep-train"] === undefined
  ? (demo ? undefined : 10000)
  : intFlag("sweep-train", args["sweep-train"], 10);
const sweepTest = args["sweep-test"] === undefined
  ? (demo ? undefined : 2000)
  : intFlag("sweep-test", args["sweep-test"], 10);
const backendName = choiceFlag("backend", args.backend, BACKENDS);
const engineName = choiceFlag("engine", args.engine, ["auto", "onnx", "tfjs"] as const);
await checkReadable("data", dataDir);
await checkReadable("backbone", backboneDir);
await checkWritable("out", out);
await checkWritable("cache", cache);

const backend = await useBackend(backendName, { verbose: args.verbose });
const engine = await resolveEngine(engineName).catch((e) => fail((e as Error).message));
const unet: Backbone = freeze(
  await loadBackbone(backboneDir).catch((e) =>
    fail(`--backbone ${backboneDir}: ${(e as Error).message}`)
  ),
);
// The tap and the sweep's first block must exist in this model (checked before the data).
const blockRef = /^\d+$/.test(args.block) ? intFlag("block", args.block, 1) : args.block;
try {
  unet.block(blockRef);
} catch (e) {
  fail(`--block: ${(e as Error).message}`);
}
const lastBlock = unet.blocks.at(-1)!.index!;
const midBlock = unet.blocks.find((b) => b.name === "mid_block")?.index ?? 1;
const sweepFrom = args["sweep-from"] === undefined
  ? midBlock
  : intFlag("sweep-from", args["sweep-from"], 1, lastBlock);
console.error(
  `backend: ${backend}; extraction engine: ${engine}; ${unet.blocks.length} blocks; feature cache: ${cache}`,
);

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

const train = balanced(await readSplit(dataDir, "train", cache), limitTrain, 1);
const test = balanced(await readSplit(dataDir, "test", cache), limitTest, 2);
console.error(
  `train: ${train.size} images, test: ${test.size} images, ${train.classes.length} classes`,
);

/** Extracts the taps for a dataset through the cache, with a progress bar. */
async function features(
  ds: ImageDataset,
  taps: Tap[],
  phase: string,
): Promise<Map<string, tf.Tensor>> {
  const bar = progressBar(phase, ds.size, { unit: "images" });
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
    engine,
    backbone: shown(backboneDir),
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
  const blocks = unet.blocks.filter((b) => b.index! >= sweepFrom).map((b) => b.index!);
  const ts = sweepTs;
  const sTrain = balanced(train, sweepTrain, 3);
  const sTest = balanced(test, sweepTest, 4);
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
    fit: { epochs, batchSize: 256, learningRate: 1e-3, weightDecay: 0 },
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
const points = [{ t, block: unet.block(blockRef) }];
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
      const headEpochs = kind === "linear" ? epochs : attentionEpochs;
      const head = kind === "linear"
        ? new LinearHead({ inputShape: trainX.shape.slice(1), outputs: 10, seed: 0 })
        : new AttentionHead({
          inputShape: trainX.shape.slice(1),
          outputs: 10,
          seed: 0,
          dim: attentionDim,
          layers: attentionLayers,
          heads: 8,
        });
      const label = `${kind} t=${point.t} block ${point.block.index}`;
      const bar = progressBar(`fit ${label}`, headEpochs, { unit: "epochs" });
      await head.fit(trainX, Array.from(train.labels), {
        epochs: headEpochs,
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
// The results table (stdout) and where the heatmap is.
console.log(`\nCIFAR-10, ${train.size} training / ${test.size} test images, ${shown(backboneDir)}`);
console.log("head        t     block                          test accuracy   fit + eval (s)");
for (const r of [...runs].sort((a, b) => b.accuracy - a.accuracy)) {
  console.log(
    `${r.head.padEnd(11)} ${String(r.t).padEnd(5)} ${`${r.block ?? ""} ${r.name}`.padEnd(30)} ${
      `${(r.accuracy * 100).toFixed(2)} %`.padStart(13)
    } ${r.seconds.toFixed(0).padStart(16)}`,
  );
}
if (best) {
  console.log(
    `sweep best (linear probe): t=${best.t} block ${best.block} ${best.name}: ${
      (best.metric * 100).toFixed(2)
    } %; heatmap: ${join(out, "sweep.svg")}`,
  );
}
console.log(`wrote ${join(out, "results.json")}`);
unet.dispose();
