/**
 * A child process spoken to in JSON lines: the benches' PyTorch references (`--serve`) and the
 * onnxruntime version comparison's workers read one request per line on stdin and answer one
 * JSON object per line on stdout.
 *
 * @module
 */

/** A running child: `request` writes one line and reads the answer; `close` ends it. */
export interface LineChild {
  /** The next answer line, parsed (the greeting first, when the child sends one). */
  read(): Promise<Record<string, unknown>>;
  /** Writes `message` (JSON-encoded unless a string) as one line and reads the answer. */
  request(message: unknown): Promise<Record<string, unknown>>;
  /** Closes stdin and waits for the child to exit. */
  close(): Promise<void>;
}

/** Starts `command` with piped stdin/stdout; `what` names it when it exits early. */
export function spawnLineChild(
  command: string,
  options: { args: string[]; cwd?: string; stderr?: "inherit" | "null"; what: string },
): LineChild {
  const child = new Deno.Command(command, {
    args: options.args,
    cwd: options.cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: options.stderr ?? "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const read = async (): Promise<Record<string, unknown>> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`${options.what} exited early (see its error above)`);
      buffered += value;
    }
    const at = buffered.indexOf("\n");
    const line = buffered.slice(0, at);
    buffered = buffered.slice(at + 1);
    return JSON.parse(line);
  };
  return {
    read,
    async request(message) {
      const text = typeof message === "string" ? message : JSON.stringify(message);
      await writer.write(new TextEncoder().encode(text + "\n"));
      return await read();
    },
    async close() {
      await writer.close();
      await child.status;
    },
  };
}
