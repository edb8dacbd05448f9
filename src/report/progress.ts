/**
 * Progress bars for long work (extraction, fitting, training), drawn by `cli-progress` on a
 * terminal and as occasional plain lines when the output is a file or a CI log.
 *
 * @example
 * ```ts
 * import { progressBar } from "./progress.ts";
 *
 * const bar = progressBar("extract", 100, { interactive: false });
 * bar.update(50);
 * bar.stop();
 * ```
 *
 * @module
 */
import cliProgress from "cli-progress";
import process from "node:process";

/** A running progress bar. */
export interface ProgressBar {
  /** Sets the count done (and the total, when it changes); `info` is shown after the counts. */
  update(done: number, total?: number, info?: string): void;
  /** Finishes the bar. */
  stop(): void;
}

/** Options of {@linkcode progressBar}. */
export interface ProgressBarOptions {
  /** Draw an interactive bar (default: when stderr is a terminal). */
  interactive?: boolean;
  /** Unit shown after the counts (default `"samples"`). */
  unit?: string;
}

/**
 * Starts a progress bar labelled `label` for `total` units, on stderr.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { progressBar } from "@diffprobe/core";
 *
 * const bar = progressBar("fit", 15, { unit: "epochs", interactive: false });
 * for (let e = 1; e <= 15; e++) bar.update(e, undefined, `loss ${(1 / e).toFixed(3)}`);
 * bar.stop(); // printed "fit: 15/15 epochs (0.0 s) loss 0.067" on stderr
 * assert.equal(typeof bar.update, "function");
 * ```
 */
export function progressBar(
  label: string,
  total: number,
  options: ProgressBarOptions = {},
): ProgressBar {
  const unit = options.unit ?? "samples";
  const interactive = options.interactive ?? Deno.stderr.isTerminal();
  const start = performance.now();
  if (interactive) {
    const bar = new cliProgress.SingleBar({
      format: `${
        label.padEnd(18)
      } {bar} {percentage}% | {value}/{total} ${unit} | {eta_formatted} left | {info}`,
      stream: process.stderr,
      hideCursor: true,
    }, cliProgress.Presets.shades_classic);
    bar.start(total, 0, { info: "" });
    return {
      update(done, newTotal, info) {
        if (newTotal !== undefined && newTotal !== total) {
          total = newTotal;
          bar.setTotal(newTotal);
        }
        bar.update(done, { info: info ?? "" });
      },
      stop() {
        bar.stop();
      },
    };
  }
  let lastPrint = 0;
  const print = (done: number, info?: string) => {
    const seconds = (performance.now() - start) / 1000;
    console.error(
      `${label}: ${done}/${total} ${unit} (${rateText(done, seconds, unit)})${
        info ? ` ${info}` : ""
      }`,
    );
  };
  return {
    update(done, newTotal, info) {
      if (newTotal !== undefined) total = newTotal;
      const now = performance.now();
      if (now - lastPrint > 10_000 || done >= total) {
        lastPrint = now;
        print(done, info);
      }
    },
    stop() {},
  };
}

/**
 * "12.3 s, 45.6 images/s" — the rate only once a second has passed (a batch that came from a
 * cache in a millisecond says nothing about the speed), with digits that fit its size, and as
 * seconds per unit when below one per second ("294.1 s, 49.0 s each").
 */
function rateText(done: number, seconds: number, unit: string): string {
  if (seconds < 1 || done === 0) return `${seconds.toFixed(1)} s`;
  const rate = done / seconds;
  if (rate < 1) return `${seconds.toFixed(1)} s, ${(seconds / done).toFixed(1)} s each`;
  return `${seconds.toFixed(1)} s, ${rate < 100 ? rate.toFixed(1) : Math.round(rate)} ${unit}/s`;
}
