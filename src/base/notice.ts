/**
 * One-time notices on stderr: how the library says, once per process, which engine or backend
 * it chose when a faster one was unavailable, and what would enable it (never a silent
 * fallback, never the same line a thousand times).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { notice } from "./notice.ts";
 *
 * assert.equal(notice("doc-example", "diffprobe: said once"), true);
 * assert.equal(notice("doc-example", "diffprobe: said once"), false); // already said
 * ```
 *
 * @module
 */

const said = new Set<string>();

/**
 * Prints `message` on stderr the first time `key` is seen in this process and returns whether
 * it printed; nothing is printed when `enabled` is false.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { notice } from "./notice.ts";
 *
 * assert.equal(notice("quiet-example", "not printed", false), false);
 * ```
 */
export function notice(key: string, message: string, enabled = true): boolean {
  if (!enabled || said.has(key)) return false;
  said.add(key);
  console.error(message);
  return true;
}
