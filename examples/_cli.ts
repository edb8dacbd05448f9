/**
 * The command-line conventions shared by the examples and benches: strict flag parsing (an
 * unknown flag or a missing value is an error), `--help` listing every flag with its default,
 * and bad input answered by the usage line, one `error:` line and exit code 2 — never a stack
 * trace, and always before any work starts. Paths are checked the same way: readable inputs,
 * writable outputs (permission and a real test write), before the first expensive step.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";

/** One flag of a command. */
export interface Flag {
  /** `"string"` (takes a value) or `"boolean"` (a switch). */
  type: "string" | "boolean";
  /** The default value, also shown by `--help`. */
  default?: string;
  /**
   * What the default is when it depends on other flags (shown by `--help` instead); text in
   * parentheses is shown as it is, e.g. `"(required unless --demo)"`.
   */
  defaultText?: string;
  /** The value's placeholder in `--help`, e.g. `"N"` or `"dir"`. */
  value?: string;
  /** One line for `--help`. */
  help: string;
  /** The flag may be repeated (values are collected in order). */
  multiple?: boolean;
}

/** A command: its name as typed, a one-line summary, its flags, and notes for `--help`. */
export interface Command<F extends Record<string, Flag>> {
  /** How to run it, e.g. `"deno task waves"`. */
  name: string;
  /** One line saying what it does. */
  summary: string;
  /** Its flags (without `help`, which every command has). */
  flags: F;
  /** Extra lines printed after the flags by `--help`. */
  notes?: string[];
}

/** The parsed values: strings for string flags, booleans for switches, arrays for `multiple`. */
export type Values<F extends Record<string, Flag>> = {
  [K in keyof F]: F[K]["type"] extends "boolean" ? boolean
    : F[K]["multiple"] extends true ? string[] | undefined
    : F[K]["default"] extends string ? string
    : string | undefined;
};

/** The text `--help` prints. */
export function helpText<F extends Record<string, Flag>>(command: Command<F>): string {
  const rows = Object.entries(command.flags).map(([name, f]) => {
    const left = f.type === "boolean" ? `--${name}` : `--${name} <${f.value ?? "value"}>`;
    const def = f.defaultText ?? (f.default !== undefined ? f.default : undefined);
    // A defaultText in parentheses is shown as it is, e.g. "(required unless --demo)".
    const shown = def === undefined || def === ""
      ? ""
      : def.startsWith("(")
      ? ` ${def}`
      : ` (default: ${def})`;
    return [left, f.help + shown];
  });
  rows.push(["--help", "print this help and exit"]);
  const width = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  const lines = rows.map(([l, r]) =>
    l.length + 2 > width ? `  ${l}\n  ${" ".repeat(width)}${r}` : `  ${l.padEnd(width)}${r}`
  );
  return [
    `Usage: ${command.name} [flags]`,
    command.summary,
    "",
    "Flags:",
    ...lines,
    ...(command.notes?.length ? ["", ...command.notes] : []),
  ].join("\n");
}

let current: { name: string } = { name: "this command" };

/** Prints the usage line and one error line on stderr and exits with code 2 (bad input). */
export function fail(message: string): never {
  console.error(`Usage: ${current.name} [flags]   (--help lists every flag and its default)`);
  console.error(`error: ${message}`);
  Deno.exit(2);
}

/**
 * Parses `args` strictly against the command's flags. `--help` prints {@linkcode helpText} and
 * exits 0; an unknown flag, a stray argument or a missing value exits 2 via {@linkcode fail}.
 */
export function parseCli<F extends Record<string, Flag>>(
  command: Command<F>,
  args: string[] = Deno.args,
): Values<F> {
  current = command;
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const [name, f] of Object.entries(command.flags)) {
    options[name] = { type: f.type, ...(f.multiple ? { multiple: true } : {}) };
  }
  options.help = { type: "boolean" };
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    // node:util's messages, shortened: "Unknown option '--x'", "Option '--t <value>' argument missing"
    const message = (e as Error).message.split("\n")[0].split(". ")[0].replace(/\.$/, "");
    const flag = message.match(/'(--[a-z-]+)/)?.[1];
    fail(
      /ambiguous/.test(message) && flag
        ? `${message}: write a value that starts with "-" as ${flag}=-1`
        : message,
    );
  }
  if (values.help) {
    console.log(helpText(command));
    Deno.exit(0);
  }
  for (const [name, f] of Object.entries(command.flags)) {
    if (values[name] === undefined) {
      values[name] = f.type === "boolean" ? false : f.default;
    }
    if (f.type === "string" && !f.multiple && values[name] === "") {
      fail(`--${name} needs a value`);
    }
  }
  return values as Values<F>;
}

/** A whole number in `[min, max]`, else exit 2 naming the flag and the value. */
export function intFlag(
  name: string,
  value: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const rule = max === Number.MAX_SAFE_INTEGER
      ? `a whole number ≥ ${min}`
      : `a whole number in [${min}, ${max}]`;
    fail(`--${name} must be ${rule}, got "${value}"`);
  }
  return n;
}

/** A finite number in `[min, max]`, else exit 2. */
export function numberFlag(name: string, value: string, min = -Infinity, max = Infinity): number {
  const n = value.trim() === "" ? NaN : Number(value);
  if (!Number.isFinite(n) || n < min || n > max) {
    fail(`--${name} must be a number in [${min}, ${max}], got "${value}"`);
  }
  return n;
}

/** A comma-separated list of whole numbers (each in `[min, max]`), at least one. */
export function intListFlag(name: string, value: string, min = 0, max?: number): number[] {
  const parts = value.split(",").map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === "")) {
    fail(`--${name} must be a comma-separated list of whole numbers, got "${value}"`);
  }
  return parts.map((p) => intFlag(name, p, min, max));
}

/** One of `choices`, else exit 2 listing them. */
export function choiceFlag<T extends string>(
  name: string,
  value: string,
  choices: readonly T[],
): T {
  if (!(choices as readonly string[]).includes(value)) {
    fail(`--${name} must be one of ${choices.join(", ")}, got "${value}"`);
  }
  return value as T;
}

/**
 * Checks before any work that `path` (a file or folder) exists and may be read; exits 2 saying
 * which permission to add otherwise.
 */
export async function checkReadable(flag: string, path: string): Promise<void> {
  const { state } = await Deno.permissions.query({ name: "read", path });
  if (state !== "granted") {
    fail(
      `--${flag} ${path}: no read permission there. The task reads only inside the repository; ` +
        `run the script with deno run and your own --allow-read=${path} (see the README, "Permissions")`,
    );
  }
  try {
    await Deno.stat(path);
  } catch {
    fail(`--${flag} ${path}: no such file or folder`);
  }
}

/**
 * Checks before any work that the folder `dir` may be written: the write permission covers it
 * and a test file can really be created there (the folder is created when missing). Exits 2
 * with a clear message otherwise; `granted` names the folder the task's --allow-write allows.
 */
export async function checkWritable(flag: string, dir: string, granted = "out"): Promise<void> {
  const { state } = await Deno.permissions.query({ name: "write", path: dir });
  if (state !== "granted") {
    fail(
      `--${flag} ${dir}: no write permission there. The task may write only under ${granted}/ ` +
        `(--allow-write=${granted}); pick --${flag} ${granted}/<name>, or run the script with ` +
        `deno run and your own --allow-write=${dir} (see the README, "Permissions")`,
    );
  }
  const probe = resolve(dir, `.write-test-${Deno.pid}`);
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (e) {
    fail(`--${flag} ${dir}: cannot write there (${(e as Error).message.split("\n")[0]})`);
  }
}

/** The values `--backend` takes (those of the library's `useBackend`). */
export const BACKENDS = ["auto", "wasm", "cpu", "webgpu", "tensorflow"] as const;
