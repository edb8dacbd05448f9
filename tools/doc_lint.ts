/**
 * Runs `deno doc --lint mod.ts` and fails on every problem except `private-type-ref` errors whose
 * private type is one of TensorFlow.js' own types (JSR cannot document an npm package's types).
 *
 * Usage: `deno run --allow-run=deno tools/doc_lint.ts`
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
if (bad.length > 0 || (!out.success && problems.length === 0)) {
  console.error(bad.length > 0 ? bad.join("\n\n") : plain);
  console.error(
    `doc lint: ${bad.length} problem(s) (${tolerated} tolerated tfjs private-type-ref)`,
  );
  Deno.exit(1);
}
console.log(`doc lint: clean (${tolerated} tolerated private-type-ref into tfjs' own types)`);
