/**
 * Content checksums (SHA-256, hex) for cache keys and integrity checks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Hex } from "./checksum.ts";
 *
 * assert.equal(
 *   await sha256Hex(new TextEncoder().encode("abc")),
 *   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
 * );
 * ```
 *
 * @module
 */

/**
 * SHA-256 of the concatenation of `parts` (strings are UTF-8 encoded), as lowercase hex.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Hex } from "./checksum.ts";
 *
 * const a = await sha256Hex("ab", new Uint8Array([99]));
 * assert.equal(a, await sha256Hex("abc"));
 * ```
 */
export async function sha256Hex(...parts: (string | ArrayBufferView)[]): Promise<string> {
  const views = parts.map((p) =>
    typeof p === "string"
      ? new TextEncoder().encode(p)
      : new Uint8Array(p.buffer, p.byteOffset, p.byteLength)
  );
  const total = views.reduce((n, v) => n + v.byteLength, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const v of views) {
    joined.set(v, offset);
    offset += v.byteLength;
  }
  const digest = await crypto.subtle.digest("SHA-256", joined);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
