/**
 * Internal: the entry point of an image decode worker. It receives
 * `{ id, files }`, reads and decodes the files with `decodeChunk`, and posts back
 * `{ id, result }` with the pixel buffer transferred. Not part of the public API.
 *
 * @module
 */

import { type ChunkResult, decodeChunk } from "./_decode_image.ts";

/** A request from the main thread. */
export interface DecodeRequest {
  id: number;
  files: string[];
}

/** The worker's answer to a {@linkcode DecodeRequest}. */
export interface DecodeResponse {
  id: number;
  result: ChunkResult;
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<DecodeRequest>) => void) | null;
  postMessage(message: DecodeResponse, transfer: Transferable[]): void;
};

scope.onmessage = (event) => {
  const { id, files } = event.data;
  const result = decodeChunk(files);
  scope.postMessage({ id, result }, [result.pixels.buffer as ArrayBuffer]);
};
