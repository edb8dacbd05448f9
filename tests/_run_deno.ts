/**
 * Runs `deno` with `args` from the repository root, without colours, and returns its exit code
 * and decoded output: how tests spawn the example CLIs and tasks as a user would. Needs
 * `--allow-run=deno`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The repository root. */
export const root: string = fileURLToPath(new URL("..", import.meta.url));

/** A finished `deno` process: exit code, stdout and stderr. */
export interface DenoRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno ...args` in the repository root and waits for it. */
export async function runDeno(args: string[]): Promise<DenoRun> {
  const out = await new Deno.Command("deno", {
    args,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
