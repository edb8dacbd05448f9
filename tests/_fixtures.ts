/** Locating test fixtures: the committed small ones and the shared large ones. */
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

/** Why a test is skipped, printed once per missing path. */
export function skipNote(rel: string): boolean {
  if (shared(rel) !== null) return false;
  console.log(`skipped: ../shared/${rel} is absent (it exists in CI; see DATA.md)`);
  return true;
}
