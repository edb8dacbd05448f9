/**
 * Atomic file writes: the bytes go to a temporary file beside the target, which is renamed over
 * it only once complete, so a reader never sees half a file and a crash leaves the old file. The
 * temporary file is removed when any step fails.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeFileAtomic } from "./atomic_write.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.txt`, "hello");
 * assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "hello");
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.txt"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

/**
 * Writes `data` (bytes or UTF-8 text) to `path` through a temporary file and a rename. On
 * failure the temporary file is removed and the error is rethrown with `path` named in it.
 *
 * @example A failed write leaves nothing behind
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeFileAtomic } from "./atomic_write.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/taken`); // a folder where the file should go
 * await assert.rejects(writeFileAtomic(`${dir}/taken`, "x"), /taken/);
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["taken"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(4)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const tmp = `${path}.${suffix}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes, { createNew: true });
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    if (error instanceof Error && error.message.includes(path)) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new (error instanceof Error ? error.constructor as ErrorConstructor : Error)(
      `Cannot write "${path}": ${reason}`,
      { cause: error },
    );
  }
}
