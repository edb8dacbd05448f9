import * as ort from "onnxruntime-node";
import { loadBackbone } from "./src/models/backbone.ts";
import { asLowerable } from "./src/engine/onnx_graph.ts";
import { buildUNetTrainGraph } from "./src/engine/_train_graph_unet.ts";
import { adamwScalars } from "./src/engine/_optim_graph.ts";
const unet = asLowerable(await loadBackbone("../shared/fixtures/ddpm-cifar10-small"));
const hyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 };
const graph = buildUNetTrainGraph(unet, 32, { adamw: hyper, clipNorm: 1, ema: true });
const session = await ort.InferenceSession.create(graph.model, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all", enableProfiling: true, profileFilePrefix: "/tmp/tgcifar", logSeverityLevel: 3 });
const feeds: Record<string, ort.Tensor> = {};
for (const name of graph.inputs) {
  const shape = graph.shapes.get(name)!;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = name.startsWith("dropout") ? new Float32Array(n).fill(1) : name === "adamw" ? adamwScalars(1, 1e-4, hyper) : name === "ema_decay" ? new Float32Array([0.9, 0.1]) : new Float32Array(n).map(() => Math.random() * 0.1);
  feeds[name] = new ort.Tensor("float32", data, shape);
}
for (let i = 0; i < 2; i++) { const t0 = performance.now(); await session.run(feeds, graph.outputs); console.log(i, (performance.now() - t0).toFixed(0)); }
session.endProfiling();
