/**
 * Loading a saved head without knowing its class.
 *
 * @module
 */

import { AttentionHead } from "./attention_head.ts";
import type { Head } from "./head.ts";
import type { HeadTask } from "./head_options.ts";
import { readHeadManifest } from "./head_file.ts";
import { LinearHead } from "./linear_head.ts";
import { MLPHead } from "./mlp_head.ts";

/**
 * Loads any head saved by `Head.save`, dispatching on the class name in `head.json`.
 *
 * @example Reload a probe and use it
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadHead, MLPHead } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * const saved = new MLPHead({ inputShape: [3], outputs: 1, task: "regression", hidden: [4] });
 * await saved.save(dir);
 * const head = await loadHead(dir);
 * assert.equal(head.className, "MLPHead");
 * assert.equal(head.task, "regression");
 * saved.dispose();
 * head.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir The folder holding `head.json` and `head.safetensors`.
 * @returns The head (its task is only known at run time; check `head.task`).
 * @throws {Error} When the folder does not hold a head, or its class is unknown.
 */
export async function loadHead(dir: string): Promise<Head<HeadTask>> {
  const { className } = await readHeadManifest(dir);
  switch (className) {
    case "LinearHead":
      return await LinearHead.load(dir);
    case "MLPHead":
      return await MLPHead.load(dir);
    case "AttentionHead":
      return await AttentionHead.load(dir);
    default:
      throw new Error(
        `Cannot load "${dir}": unknown head class "${className}" (expected LinearHead, MLPHead or AttentionHead)`,
      );
  }
}
