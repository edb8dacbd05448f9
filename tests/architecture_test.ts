/**
 * The package's layering, checked on the source: which `src/` folder may import
 * which, that `_`-prefixed internals stay inside their folder, and that examples and benches use
 * only the public `mod.ts`.
 *
 * One refinement of the sketch: `report/` (tables, SVG plots, progress bars) imports nothing from
 * `src/`, so it sits with `io/` at the bottom, and `probe/` (the sweep's heatmap) and `train/`
 * (loss plots, sample grids) may use it. `engine/` (the onnxruntime extractor) lowers a backbone,
 * so it sits between `models/` and `probe/`. `optim/` (AdamW and the learning-rate schedule)
 * sits on `base/`, below `heads/` and `train/`, which both use it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const ALLOWED: Record<string, string[]> = {
  base: [],
  io: ["base"],
  report: ["base"],
  backend: ["base"],
  optim: ["base"],
  nn: ["base", "io"],
  models: ["base", "io", "nn"],
  engine: ["base", "io", "nn", "models"],
  probe: ["base", "io", "nn", "models", "engine", "report"],
  heads: ["base", "io", "nn", "optim"],
  train: ["base", "io", "nn", "optim", "models", "backend", "report"],
  data: ["base", "io"],
};

const root = new URL("..", import.meta.url).pathname;

async function* files(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) yield* files(path);
    else if (e.name.endsWith(".ts")) yield path;
  }
}

const specifiers = (text: string): string[] =>
  [...text.matchAll(/(?:import|export)[^"';]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g)]
    .map((m) => m[1] ?? m[2]);

Deno.test("src/ folders import only the layers below them, and no other folder's _internals", async () => {
  const violations: string[] = [];
  const seen = new Set<string>();
  for await (const path of files(join(root, "src"))) {
    const folder = path.slice(join(root, "src").length + 1).split("/")[0];
    if (!(folder in ALLOWED)) {
      violations.push(`${folder}/ is not a known layer`);
      continue;
    }
    seen.add(folder);
    for (const spec of specifiers(await Deno.readTextFile(path))) {
      const m = /^\.\.\/([a-z_]+)\/(.+)$/.exec(spec);
      if (!m) continue;
      const [, target, file] = m;
      if (!ALLOWED[folder].includes(target)) violations.push(`${path}: imports ${spec}`);
      if (file.split("/").at(-1)!.startsWith("_")) {
        violations.push(`${path}: uses ${target}/'s internal ${file}`);
      }
    }
  }
  assert.deepEqual(violations, []);
  assert.deepEqual([...seen].sort(), Object.keys(ALLOWED).sort());
});

Deno.test("examples and benches import the library only through mod.ts", async () => {
  const violations: string[] = [];
  for (const dir of ["examples", "bench"]) {
    for await (const path of files(join(root, dir))) {
      for (const spec of specifiers(await Deno.readTextFile(path))) {
        if (/(^|\/)src\//.test(spec)) violations.push(`${path}: imports ${spec}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
