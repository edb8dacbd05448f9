/**
 * The README's install recipe, run as written: a fresh project folder with the README's
 * `deno.json` and `main.ts`, the library beside it in `./diffprobe` (as a clone would be), then
 * the README's commands (`deno install`, `deno run …`). The program asserts its own results.
 * Offline: the npm packages come from Deno's cache. Needs `--allow-run=deno` and
 * `--allow-write=/tmp`.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The fenced block that follows `<!-- readme_test: <name> -->` in the README. */
function readmeBlock(readme: string, name: string): string {
  const marker = `<!-- readme_test: ${name} -->`;
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `README.md has no ${marker}`);
  const m = readme.slice(at + marker.length).match(/^\s*```[a-z]*\n([\s\S]*?)\n```/);
  assert.ok(m, `no fenced block after ${marker}`);
  return m[1];
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const [a, b] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory) await copyTree(a, b);
    else if (entry.isFile) await Deno.copyFile(a, b);
  }
}

Deno.test("the README's install recipe works from a clone, as written", async () => {
  const readme = await Deno.readTextFile(join(root, "README.md"));
  const project = await Deno.makeTempDir({ prefix: "diffprobe-readme-" });
  try {
    await Deno.writeTextFile(join(project, "deno.json"), readmeBlock(readme, "deno.json"));
    await Deno.writeTextFile(join(project, "main.ts"), readmeBlock(readme, "main.ts"));
    // The library as a clone holds it (what `publish` ships: mod.ts, src/, deno.json).
    const lib = join(project, "diffprobe");
    await copyTree(join(root, "src"), join(lib, "src"));
    for (const f of ["mod.ts", "deno.json", "LICENSE"]) {
      await Deno.copyFile(join(root, f), join(lib, f));
    }
    let output = "";
    for (const line of readmeBlock(readme, "commands").split("\n").filter(Boolean)) {
      const [cmd, ...args] = line.trim().split(/\s+/);
      assert.equal(cmd, "deno");
      const out = await new Deno.Command("deno", {
        args,
        cwd: project,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `${line} failed:\n${text}`);
      output = text;
    }
    assert.match(output, /^(wasm|cpu|webgpu|tensorflow)$/m);
    assert.match(output, /^features \[ 8, 64 \]$/m);
    assert.doesNotMatch(output, /Hi, looks like you are running TensorFlow\.js/);
  } finally {
    await Deno.remove(project, { recursive: true });
  }
});
