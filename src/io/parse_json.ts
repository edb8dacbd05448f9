/**
 * JSON from untrusted bytes, with errors that never quote the text: a parser's own message
 * shows a piece of the input, which for a mislabelled or linked file is another file's contents.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseJsonBytes } from "./parse_json.ts";
 *
 * const fail = (problem: string) => new TypeError(`config.json ${problem}`);
 * const bytes = new TextEncoder().encode('{"a": 1}');
 * assert.deepEqual(parseJsonBytes(bytes, fail).value, { a: 1 });
 * assert.throws(
 *   () => parseJsonBytes(new TextEncoder().encode("root:x:0:0"), fail),
 *   { message: "config.json is not valid JSON" },
 * );
 * ```
 *
 * @module
 */

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8 and parses JSON. On failure throws `fail("is not valid UTF-8")` or
 * `fail("is not valid JSON (at character N)")` (the position when the parser gives one).
 *
 * @param bytes The text's bytes.
 * @param fail Builds the error from a problem (a fragment starting with "is") and the cause.
 * @returns The parsed value and the decoded text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseJsonBytes } from "./parse_json.ts";
 *
 * assert.throws(
 *   () => parseJsonBytes(new TextEncoder().encode('{"a": 1,}'), (p) => new Error(`x ${p}`)),
 *   { message: "x is not valid JSON (at character 8)" },
 * );
 * ```
 */
export function parseJsonBytes(
  bytes: Uint8Array,
  fail: (problem: string, cause: unknown) => Error,
): { value: unknown; text: string } {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch (error) {
    throw fail("is not valid UTF-8", error);
  }
  try {
    return { value: JSON.parse(text), text };
  } catch (error) {
    const match = error instanceof Error ? /position (\d+)/.exec(error.message) : null;
    throw fail(`is not valid JSON${match === null ? "" : ` (at character ${match[1]})`}`, error);
  }
}
