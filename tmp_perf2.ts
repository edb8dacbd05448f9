import { createBackbone } from "./src/models/backbone.ts";
import { asLowerable } from "./src/engine/onnx_graph.ts";
import { buildUNetTrainGraph } from "./src/engine/_train_graph_unet.ts";
import { adamwScalars } from "./src/engine/_optim_graph.ts";
import * as ort from "onnxruntime-node";
const WAVE = { _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1, sample_size: 128,
  block_out_channels: [32, 64, 64], layers_per_block: 2, norm_num_groups: 8, dropout: 0.1,
  down_block_types: ["DownBlock1D", "AttnDownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "AttnUpBlock1D", "UpBlock1D"] } as const;
const unet = asLowerable(createBackbone(WAVE as any));
const batch = 32;
const level = Deno.args[0] ?? "all";
let t0 = performance.now();
const graph = buildUNetTrainGraph(unet, batch, { adamw: { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 }, clipNorm: 1 });
console.log("build", (performance.now() - t0).toFixed(0), "nodes", graph.model.byteLength);
t0 = performance.now();
const session = await ort.InferenceSession.create(graph.model, { intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: level as any, enableProfiling: Deno.args[1] === "prof", profileFilePrefix: "/tmp/tgprof", logSeverityLevel: 3 });
console.log("session", (performance.now() - t0).toFixed(0));
const feeds: Record<string, ort.Tensor> = {}; console.log("inputs", graph.inputs.length);
for (const [name, shape] of graph.shapes) {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = name.startsWith("dropout") ? new Float32Array(n).fill(1) : name === "adamw" ? adamwScalars(1, 1e-4, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 }) : name === "m" || name === "v" ? new Float32Array(n) : new Float32Array(n).map(() => Math.random() * 0.1);
  feeds[name] = new ort.Tensor("float32", data, shape);
}
for (let i = 0; i < 5; i++) {
  t0 = performance.now();
  await session.run(feeds, graph.outputs);
  console.log(i, (performance.now() - t0).toFixed(1));
}
if (Deno.args[1] === "prof") console.log(session.endProfiling());
