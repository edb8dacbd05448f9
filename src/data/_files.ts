/**
 * File helpers shared by the time-series readers: expanding a folder into its data files,
 * reading (optionally gzipped) text, and clipping long values in messages. Internal.
 *
 * @module
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The files to read: `paths` as given, or the `*.<extension>` and `*.<extension>.gz` files of a
 * folder in name order. `what` names the data in errors ("CSV series", "NDBC files").
 */
export async function listDataFiles(
  paths: string | URL | readonly (string | URL)[],
  extension: string,
  what: string,
): Promise<string[]> {
  const toPath = (p: string | URL): string => p instanceof URL ? fileURLToPath(p) : p;
  if (typeof paths !== "string" && !(paths instanceof URL)) {
    if (paths.length === 0) throw new RangeError(`Cannot read ${what}: no file given`);
    return paths.map(toPath);
  }
  const path = toPath(paths);
  if (!(await stat(path)).isDirectory()) return [path];
  const pattern = new RegExp(`\\.${extension}(\\.gz)?$`, "i");
  const names = (await readdir(path)).filter((n) => pattern.test(n)).sort();
  if (names.length === 0) {
    throw new RangeError(
      `Cannot read ${what} from ${path}: it holds no *.${extension} or *.${extension}.gz file`,
    );
  }
  return names.map((n) => join(path, n));
}

/** Reads a file as text, gunzipping names that end in `.gz`. */
export async function readText(path: string): Promise<string> {
  const bytes = await readFile(path);
  if (!/\.gz$/i.test(path)) return new TextDecoder().decode(bytes);
  const stream = new Blob([new Uint8Array(bytes)]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return await new Response(stream).text();
}

/** A value shortened to 40 characters for an error message. */
export function clip(s: string): string {
  return s.length > 40 ? s.slice(0, 37) + "..." : s;
}
