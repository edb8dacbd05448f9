/**
 * The attention probe: a small pre-LayerNorm transformer over the spatial positions of a
 * feature map, read out through a learned class token.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Head } from "./head.ts";
import {
  checkHeadOptions,
  type HeadOptions,
  type HeadTask,
  MAX_HEAD_SIZE,
} from "./head_options.ts";
import { readSavedHead } from "./head_file.ts";
import { formatShape } from "./_shape.ts";
import {
  type AttentionWeights,
  dense,
  gelu,
  initLinearUniform,
  initTruncatedNormal,
  initXavierUniform,
  layerNorm,
  selfAttention,
  sinCosPositions,
} from "./_layers.ts";
import { Random } from "../base/random.ts";
import { integerInRange } from "../base/validate.ts";

/** Options of {@linkcode AttentionHead}. */
export interface AttentionHeadOptions<T extends HeadTask = HeadTask> extends HeadOptions<T> {
  /** The token width. Default 256. */
  dim?: number;
  /** The attention heads per layer; must divide `dim`. Default 8. */
  heads?: number;
  /** The transformer blocks. Default 2. */
  layers?: number;
}

interface Norm {
  gamma: tf.Variable;
  beta: tf.Variable;
}

interface Block {
  norm1: Norm;
  attention: AttentionWeights;
  norm2: Norm;
  fc1: { weight: tf.Variable; bias: tf.Variable };
  fc2: { weight: tf.Variable; bias: tf.Variable };
}

/**
 * An attention probe over a feature map.
 *
 * Each position of an `[H, W, C]` map (or `[W, C]` for 1-D signals, or a single `[C]` vector,
 * which is one token) is a token of `C` channels. Tokens go through a LayerNorm and a linear
 * projection to `dim`, get a learned positional embedding, and a learned class token is put
 * in front. Then come `layers` pre-LayerNorm transformer blocks
 * (`x + MHSA(LN(x))`, then `x + MLP(LN(x))` with a 4× GELU MLP), a final LayerNorm of the
 * class token and a linear layer to the outputs.
 *
 * Weights (all `[in, out]` for matrices) are named `embed.norm.{weight,bias}`,
 * `embed.proj.{weight,bias}`, `pos_embed` `[tokens, dim]`, `cls_token` `[dim]`,
 * `blocks.<i>.{norm1,norm2}.{weight,bias}`, `blocks.<i>.attn.qkv.{weight,bias}` (queries,
 * keys, values along the last axis), `blocks.<i>.attn.proj.{weight,bias}`,
 * `blocks.<i>.mlp.{fc1,fc2}.{weight,bias}`, `norm.{weight,bias}` and `head.{weight,bias}`.
 * Initialisation is chosen for short probe trainings, where ViT's defaults leave the head on
 * a plateau for many steps: the input projection starts like PyTorch's `nn.Linear`; the
 * positional embedding as MAE's fixed sine–cosine embedding of the grid coordinates (then
 * trains freely), so position is visible from the first step; the block matrices Xavier-uniform
 * (as JAX's ViT); the class token and the output layer from a normal of std 0.02 truncated at
 * ±2 std; biases at 0, LayerNorm gains at 1.
 *
 * @example Which quadrant of a 4×4 map holds a bump?
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { AttentionHead } from "@diffprobe/core";
 *
 * const head = new AttentionHead({ inputShape: [4, 4, 8], outputs: 4, dim: 32, heads: 4, layers: 1 });
 * const x = tf.randomNormal([8, 4, 4, 8]);
 * const logits = head.predict(x); // [8, 4]
 * assert.deepEqual(logits.shape, [8, 4]);
 * tf.dispose([x, logits]);
 * head.dispose();
 * ```
 */
export class AttentionHead<T extends HeadTask = "classification"> extends Head<T> {
  /** Always `"AttentionHead"`. */
  override readonly className: string = "AttentionHead";
  /** The resolved options. */
  override readonly options: Required<AttentionHeadOptions<T>>;
  /** The number of spatial tokens (positions of the map), not counting the class token. */
  readonly tokens: number;
  /** The channels of each token. */
  readonly channels: number;
  #embedNorm: Norm;
  #embed: { weight: tf.Variable; bias: tf.Variable };
  #pos: tf.Variable;
  #cls: tf.Variable;
  #blocks: Block[] = [];
  #norm: Norm;
  #head: { weight: tf.Variable; bias: tf.Variable };

  /**
   * Creates a randomly initialised attention head.
   *
   * @param options Input shape (`[H, W, C]`, `[W, C]` or `[C]`), outputs, task, seed, `dim`,
   *   `heads` and `layers`.
   */
  constructor(options: AttentionHeadOptions<T>) {
    super(checkAttentionOptions(options));
    const dim = options.dim ?? 256;
    const heads = options.heads ?? 8;
    const layers = options.layers ?? 2;
    this.options = {
      inputShape: [...this.inputShape],
      outputs: this.outputs,
      task: this.task,
      seed: this.seed,
      dim,
      heads,
      layers,
    };
    this.channels = this.inputShape[this.inputShape.length - 1];
    this.tokens = this.featureSize / this.channels;
    const rng = Random.seeded(this.seed);
    const c = this.channels;
    const norm = (name: string, width: number): Norm => ({
      gamma: this.addWeight(`${name}.weight`, [width], new Float32Array(width).fill(1), false),
      beta: this.addWeight(`${name}.bias`, [width], new Float32Array(width), false),
    });
    const linear = (name: string, fanIn: number, fanOut: number, values: Float32Array) => ({
      weight: this.addWeight(`${name}.weight`, [fanIn, fanOut], values, true),
      bias: this.addWeight(`${name}.bias`, [fanOut], new Float32Array(fanOut), false),
    });
    const xavier = (name: string, fanIn: number, fanOut: number) =>
      linear(name, fanIn, fanOut, initXavierUniform(rng, fanIn, fanOut));

    this.#embedNorm = norm("embed.norm", c);
    const proj = initLinearUniform(rng, c, dim);
    this.#embed = {
      weight: this.addWeight("embed.proj.weight", [c, dim], proj.weight, true),
      bias: this.addWeight("embed.proj.bias", [dim], proj.bias, false),
    };
    this.#pos = this.addWeight(
      "pos_embed",
      [this.tokens, dim],
      sinCosPositions(this.inputShape.slice(0, -1), dim),
      false,
    );
    this.#cls = this.addWeight("cls_token", [dim], initTruncatedNormal(rng, dim), false);
    for (let i = 0; i < layers; i++) {
      const p = `blocks.${i}`;
      const norm1 = norm(`${p}.norm1`, dim);
      const qkv = xavier(`${p}.attn.qkv`, dim, 3 * dim);
      const out = xavier(`${p}.attn.proj`, dim, dim);
      const norm2 = norm(`${p}.norm2`, dim);
      const fc1 = xavier(`${p}.mlp.fc1`, dim, 4 * dim);
      const fc2 = xavier(`${p}.mlp.fc2`, 4 * dim, dim);
      this.#blocks.push({
        norm1,
        attention: {
          qkvWeight: qkv.weight,
          qkvBias: qkv.bias,
          outWeight: out.weight,
          outBias: out.bias,
        },
        norm2,
        fc1,
        fc2,
      });
    }
    this.#norm = norm("norm", dim);
    this.#head = linear("head", dim, this.outputs, initTruncatedNormal(rng, dim * this.outputs));
  }

  /** Tokens → embedding → class token + blocks → LayerNorm → linear. */
  protected override forward(x: tf.Tensor): tf.Tensor {
    const batch = x.shape[0];
    const { dim, heads } = this.options;
    let tokens = x.reshape([batch, this.tokens, this.channels]);
    tokens = layerNorm(tokens, this.#embedNorm.gamma, this.#embedNorm.beta);
    tokens = dense(tokens, this.#embed.weight, this.#embed.bias).add(this.#pos);
    const cls = this.#cls.reshape([1, 1, dim]).tile([batch, 1, 1]);
    let h = tf.concat([cls, tokens], 1);
    for (const block of this.#blocks) {
      h = h.add(
        selfAttention(layerNorm(h, block.norm1.gamma, block.norm1.beta), block.attention, heads),
      );
      const mlpIn = layerNorm(h, block.norm2.gamma, block.norm2.beta);
      h = h.add(
        dense(
          gelu(dense(mlpIn, block.fc1.weight, block.fc1.bias)),
          block.fc2.weight,
          block.fc2.bias,
        ),
      );
    }
    // The class token. A slice, not a gather: gather's gradient (UnsortedSegmentSum) has no
    // wasm kernel, and the slice's gradient (a pad) does.
    const first = tf.slice(h, [0, 0, 0], [batch, 1, dim]).reshape([batch, dim]);
    return dense(
      layerNorm(first, this.#norm.gamma, this.#norm.beta),
      this.#head.weight,
      this.#head.bias,
    );
  }

  /**
   * Loads a head saved by {@linkcode Head.save}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { AttentionHead } from "@diffprobe/core";
   *
   * const dir = await Deno.makeTempDir();
   * const head = new AttentionHead({ inputShape: [2, 2, 4], outputs: 2, dim: 8, heads: 2, layers: 1 });
   * await head.save(dir);
   * const loaded = await AttentionHead.load(dir);
   * assert.equal(loaded.parameterCount, head.parameterCount);
   * head.dispose();
   * loaded.dispose();
   * await Deno.remove(dir, { recursive: true });
   * ```
   *
   * @param dir The folder.
   * @returns The head, with its weights and standardisation statistics.
   */
  static async load(dir: string): Promise<AttentionHead<HeadTask>> {
    const saved = await readSavedHead(dir, "AttentionHead", AttentionHead.weightShapes);
    const head = new AttentionHead<HeadTask>(saved.manifest.options as AttentionHeadOptions);
    head.restore(saved);
    return head;
  }

  /**
   * The names and shapes of the weights an attention head with `options` has (checks the
   * options; allocates nothing).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { AttentionHead } from "@diffprobe/core";
   *
   * const shapes = AttentionHead.weightShapes({ inputShape: [4, 4, 8], outputs: 3, dim: 16 });
   * assert.deepEqual(shapes.get("pos_embed"), [16, 16]);
   * assert.deepEqual(shapes.get("head.weight"), [16, 3]);
   * ```
   */
  static weightShapes(options: AttentionHeadOptions): Map<string, number[]> {
    const { inputShape, outputs, featureSize } = checkHeadOptions(checkAttentionOptions(options));
    const dim = options.dim ?? 256, layers = options.layers ?? 2;
    const c = inputShape[inputShape.length - 1];
    const shapes = new Map<string, number[]>();
    const tokens = featureSize / c;
    const linear = (name: string, fanIn: number, fanOut: number) => {
      shapes.set(`${name}.weight`, [fanIn, fanOut]);
      shapes.set(`${name}.bias`, [fanOut]);
    };
    const norm = (name: string, width: number) => {
      shapes.set(`${name}.weight`, [width]);
      shapes.set(`${name}.bias`, [width]);
    };
    norm("embed.norm", c);
    linear("embed.proj", c, dim);
    shapes.set("pos_embed", [tokens, dim]);
    shapes.set("cls_token", [dim]);
    for (let i = 0; i < layers; i++) {
      norm(`blocks.${i}.norm1`, dim);
      linear(`blocks.${i}.attn.qkv`, dim, 3 * dim);
      linear(`blocks.${i}.attn.proj`, dim, dim);
      norm(`blocks.${i}.norm2`, dim);
      linear(`blocks.${i}.mlp.fc1`, dim, 4 * dim);
      linear(`blocks.${i}.mlp.fc2`, 4 * dim, dim);
    }
    norm("norm", dim);
    linear("head", dim, outputs);
    return shapes;
  }
}

/** Checks the attention head's own options (allocates nothing). */
function checkAttentionOptions<T extends HeadTask>(
  options: AttentionHeadOptions<T>,
): AttentionHeadOptions<T> {
  const inputShape = options?.inputShape;
  if (Array.isArray(inputShape) && inputShape.length > 3) {
    throw new RangeError(
      `An attention head takes [H, W, C], [W, C] or [C] features, got inputShape ${
        formatShape(inputShape)
      }`,
    );
  }
  for (const key of ["dim", "heads", "layers"] as const) {
    const value = options?.[key];
    if (value !== undefined) integerInRange(value, `Option ${key}`, 1, MAX_HEAD_SIZE);
  }
  const dim = options?.dim ?? 256;
  const heads = options?.heads ?? 8;
  if (dim % heads !== 0) {
    throw new RangeError(`Option dim (${dim}) must be divisible by heads (${heads})`);
  }
  return options;
}
