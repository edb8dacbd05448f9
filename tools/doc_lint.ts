/**
 * The documentation checks CI runs (`deno task doc:lint`):
 *
 * 1. `deno doc --lint mod.ts` — every problem fails except `private-type-ref` errors whose
 *    private type is one of TensorFlow.js' own types (JSR cannot document an npm package's types);
 * 2. the JSR score items we control: `deno.json` has a name, version, description, license and
 *    exports; `mod.ts` has module docs with an example; every public symbol has docs (1. checks
 *    that) and its examples import the package as users do (`"@diffprobe/core"`), never a
 *    relative path such as `./backbone.ts`, so they can be pasted into a user's project.
 *
 * Usage: `deno task doc:lint` (`deno run --allow-run=deno --allow-read=deno.json tools/doc_lint.ts`)
 */
const TFJS_TYPES = new Set([
  "Tensor",
  "Tensor1D",
  "Tensor2D",
  "Tensor3D",
  "Tensor4D",
  "Tensor5D",
  "Tensor6D",
  "Scalar",
  "Rank",
  "Variable",
  "TensorContainer",
  "DataType",
  "TensorLike",
  "NamedTensorMap",
  "TypedArray",
]);

const out = await new Deno.Command("deno", {
  args: ["doc", "--lint", "mod.ts"],
  stderr: "piped",
  stdout: "piped",
})
  .output();
const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
// deno-lint-ignore no-control-regex
const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
const problems = plain.split(/\n(?=(?:error|warning)\[)/).filter((b) =>
  /^(error|warning)\[/.test(b)
);
let tolerated = 0;
const bad: string[] = [];
for (const p of problems) {
  const m = p.match(/^error\[private-type-ref\]: .* references private type '([^']+)'/);
  if (m && TFJS_TYPES.has(m[1])) tolerated++;
  else bad.push(p.trim());
}
// JSR score items.
const config = JSON.parse(await Deno.readTextFile("deno.json")) as Record<string, unknown>;
for (const field of ["name", "version", "description", "license", "exports"]) {
  if (!config[field]) bad.push(`deno.json: no "${field}" (a JSR score item)`);
}
const docJson = await new Deno.Command("deno", {
  args: ["doc", "--json", "mod.ts"],
  stdout: "piped",
  stderr: "null",
})
  .output();
type JsDoc = { doc?: string; tags?: { kind: string; doc?: string }[] };
const doc = JSON.parse(new TextDecoder().decode(docJson.stdout)) as {
  nodes: Record<string, {
    module_doc?: JsDoc;
    symbols: { name: string; declarations: { jsDoc?: JsDoc; location: { filename: string } }[] }[];
  }>;
};
const root = Object.values(doc.nodes)[0];
if (!root.module_doc?.doc || !/```ts/.test(root.module_doc.doc)) {
  bad.push("mod.ts: module docs (@module) with a ```ts example are missing (a JSR score item)");
}
/** Relative imports in an example: not pasteable into a user's project. */
const relative = (code: string) =>
  [...code.matchAll(/from\s+["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]);
for (const m of relative(root.module_doc?.doc ?? "")) {
  bad.push(`mod.ts module docs: the example imports "${m}"; import "@diffprobe/core" instead`);
}
let examples = 0;
for (const symbol of root.symbols) {
  for (const d of symbol.declarations) {
    for (const tag of d.jsDoc?.tags ?? []) {
      if (tag.kind !== "example") continue;
      examples++;
      for (const m of relative(tag.doc ?? "")) {
        const file = d.location.filename.replace(/^file:\/\/.*?\/(src\/|mod\.ts)/, "$1");
        bad.push(
          `${symbol.name} (${file}): its example imports "${m}"; import "@diffprobe/core" instead`,
        );
      }
    }
  }
}

if (bad.length > 0 || (!out.success && problems.length === 0)) {
  console.error(bad.length > 0 ? bad.join("\n\n") : plain);
  console.error(
    `doc lint: ${bad.length} problem(s) (${tolerated} tolerated tfjs private-type-ref)`,
  );
  Deno.exit(1);
}
console.log(
  `doc lint: clean (${root.symbols.length} public symbols, ${examples} examples; ` +
    `${tolerated} tolerated private-type-ref into tfjs' own types)`,
);
