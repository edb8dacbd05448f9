/**
 * A streaming reader of tar archives (ustar, with pax and GNU long-name headers), enough to take
 * files out of an npm tarball without holding a 230 MB member in memory: entries are yielded in
 * order with their bodies as chunk streams, and a body left unread is skipped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tarEntries } from "./_tar.ts";
 *
 * // One 3-byte file "a.txt" (hand-made ustar header), then the end-of-archive blocks.
 * const header = new Uint8Array(512);
 * const put = (at: number, text: string) => header.set(new TextEncoder().encode(text), at);
 * put(0, "a.txt");
 * put(124, "00000000003\0");
 * put(156, "0");
 * put(257, "ustar\u000000");
 * put(148, "        ");
 * const sum = header.reduce((a, b) => a + b, 0);
 * put(148, sum.toString(8).padStart(6, "0") + "\0 ");
 * const body = new Uint8Array(512);
 * body.set([104, 105, 33]);
 * const archive = new Blob([header, body, new Uint8Array(1024)]).stream();
 * const names: string[] = [];
 * for await (const entry of tarEntries(archive)) {
 *   names.push(entry.name);
 *   let text = "";
 *   for await (const chunk of entry.body()) text += new TextDecoder().decode(chunk);
 *   assert.equal(text, "hi!");
 * }
 * assert.deepEqual(names, ["a.txt"]);
 * ```
 *
 * @module
 */

/** One member of a tar archive. */
export interface TarEntry {
  /** Its path inside the archive (pax `path` and GNU long names applied). */
  readonly name: string;
  /** Size of the body in bytes. */
  readonly size: number;
  /** The type flag: `"0"` (or `""`) a file, `"5"` a folder, `"2"` a symbolic link, … */
  readonly type: string;
  /** The body, chunk by chunk; read it before asking for the next entry, or it is skipped. */
  body(): AsyncIterable<Uint8Array>;
}

/** Reads exact byte counts from a stream of chunks. */
class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Up to `max` bytes (fewer only at the end of the stream: then an empty array). */
  async some(max: number): Promise<Uint8Array> {
    if (this.#chunk.length === 0) {
      const { value, done } = await this.#reader.read();
      if (done) return new Uint8Array(0);
      this.#chunk = value;
    }
    const out = this.#chunk.subarray(0, Math.min(max, this.#chunk.length));
    this.#chunk = this.#chunk.subarray(out.length);
    return out;
  }

  /** Exactly `n` bytes, or `null` when the stream ends first (`what` names them in errors). */
  async exact(n: number, what: string): Promise<Uint8Array | null> {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const part = await this.some(n - filled);
      if (part.length === 0) {
        if (filled === 0) return null;
        throw new RangeError(`Truncated tar archive: ${what} ends after ${filled} of ${n} bytes`);
      }
      out.set(part, filled);
      filled += part.length;
    }
    return out;
  }

  cancel(): Promise<void> {
    return this.#reader.cancel().catch(() => {});
  }
}

const text = (bytes: Uint8Array): string => {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
};

function octal(field: Uint8Array, what: string): number {
  const s = text(field).trim();
  if (!/^[0-7]*$/.test(s)) throw new RangeError(`Bad tar header: ${what} is not octal (${s})`);
  return s === "" ? 0 : parseInt(s, 8);
}

/** Pax extended-header records (`"<len> key=value\n"`), of which only `path` matters here. */
function paxPath(body: Uint8Array): string | undefined {
  const records = new TextDecoder().decode(body);
  let path: string | undefined;
  for (let at = 0; at < records.length;) {
    const space = records.indexOf(" ", at);
    const length = Number(records.slice(at, space));
    if (!(space > at && length > 0)) break;
    const record = records.slice(space + 1, at + length - 1);
    if (record.startsWith("path=")) path = record.slice(5);
    at += length;
  }
  return path;
}

/**
 * Yields the members of the tar archive in `stream` (already decompressed). Throws a `RangeError`
 * on a corrupt header (bad checksum, non-octal field) or a truncated archive.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tarEntries } from "./_tar.ts";
 *
 * // An empty archive: just the two zero blocks.
 * const entries = [];
 * for await (const e of tarEntries(new Blob([new Uint8Array(1024)]).stream())) entries.push(e);
 * assert.equal(entries.length, 0);
 * ```
 */
export async function* tarEntries(stream: ReadableStream<Uint8Array>): AsyncGenerator<TarEntry> {
  const input = new ByteReader(stream);
  let longName: string | undefined;
  try {
    while (true) {
      const header = await input.exact(512, "a header");
      if (header === null || header.every((b) => b === 0)) return;
      const stored = octal(header.subarray(148, 156), "the checksum");
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
      if (sum !== stored) {
        throw new RangeError(`Bad tar header checksum: stored ${stored}, computed ${sum}`);
      }
      const size = octal(header.subarray(124, 136), "the size");
      const type = String.fromCharCode(header[156] || 48);
      const prefix = text(header.subarray(345, 500));
      const name = longName ?? (prefix ? `${prefix}/` : "") + text(header.subarray(0, 100));
      longName = undefined;
      const padded = Math.ceil(size / 512) * 512;
      if (type === "x" || type === "L") {
        const body = await input.exact(padded, `the extended header of ${name}`);
        if (body === null) throw new RangeError(`Truncated tar archive after header ${name}`);
        longName = type === "x" ? paxPath(body.subarray(0, size)) : text(body.subarray(0, size));
        continue;
      }
      if (type === "g") { // global pax header: nothing here needs it
        await input.exact(padded, "a global header");
        continue;
      }
      let left = padded;
      const body = async function* (): AsyncGenerator<Uint8Array> {
        let unread = size;
        while (unread > 0) {
          const part = await input.some(Math.min(unread, 1 << 20));
          if (part.length === 0) {
            throw new RangeError(`Truncated tar archive: ${name} ends ${unread} bytes early`);
          }
          unread -= part.length;
          left -= part.length;
          yield part;
        }
      };
      yield { name, size, type, body };
      while (left > 0) { // the unread rest of the body and its padding
        const part = await input.some(left);
        if (part.length === 0) throw new RangeError(`Truncated tar archive inside ${name}`);
        left -= part.length;
      }
    }
  } finally {
    await input.cancel();
  }
}
