/**
 * Loading a saved head without knowing its class.
 *
 * @module
 */

import { AttentionHead } from "./attention_head.ts";
import { type Head, type HeadTask, readHeadManifest } from "./head.ts";
import { LinearHead } from "./linear_head.ts";
import { MLPHead } from "./mlp_head.ts";

/**
 * Loads any head saved by `Head.save`, dispatching on the class name in `head.json`.
 *
 * @example Reload a probe and use it
 * ```ts ignore
 * import { loadHead } from "./load_head.ts";
 * const head = await loadHead("out/probe");
 * console.log(head.className, head.task);
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
