/**
 * Preloaded before every test module by `deno task test` (`--preload`): the tfjs cpu backend's
 * "Hi, looks like you are running TensorFlow.js in Node.js" banner is switched off, as it is for
 * users of the library (which re-exports tfjs through `src/backend/tf.ts`).
 */
import { quietTfjs } from "../src/backend/quiet.ts";

quietTfjs();
