/**
 * Builds the committed offline demo of the CIFAR-10 experiment (see `README.md` beside this
 * file): the first `--train` / `--test` images of every class, copied byte for byte from a
 * CIFAR-10 image folder (`train/<class>/NNNN.jpg`), and a diffusers checkpoint re-saved as one
 * float16 safetensors file (same keys, same config).
 *
 * ```sh
 * deno run --allow-read --allow-write=examples/cifar10/demo examples/cifar10/demo/make_demo.ts \
 *   --images path/to/cifar10-jpeg --checkpoint path/to/ddpm-cifar10-small
 * ```
 *
 * @module
 */
import { join } from "node:path";
import {
  readSafetensorsFile,
  type TensorToWrite,
  toFloat32,
  writeSafetensorsFile,
} from "../../../mod.ts";
import { checkReadable, checkWritable, intFlag, parseCli } from "../../_cli.ts";

const here = new URL(".", import.meta.url).pathname;
const args = parseCli({
  name: "deno run … examples/cifar10/demo/make_demo.ts",
  summary: "Rebuilds the committed CIFAR-10 demo: an image sample and a float16 checkpoint.",
  flags: {
    images: { type: "string", value: "dir", help: "CIFAR-10 image folder (train/<class>/*.jpg)" },
    checkpoint: { type: "string", value: "dir", help: "diffusers folder (config + safetensors)" },
    train: { type: "string", default: "50", value: "N", help: "training images per class" },
    test: { type: "string", default: "20", value: "N", help: "test images per class" },
    out: { type: "string", default: here, value: "dir", help: "where the demo goes" },
  },
});
if (!args.images || !args.checkpoint) {
  console.error("error: --images and --checkpoint are required");
  Deno.exit(2);
}
const perClass = { train: intFlag("train", args.train, 1), test: intFlag("test", args.test, 1) };
await checkReadable("images", args.images);
await checkReadable("checkpoint", args.checkpoint);
await checkWritable("out", args.out);

// The images: the first N files of every class, in name order, byte for byte.
for (const split of ["train", "test"] as const) {
  const classes = [...Deno.readDirSync(join(args.images, split))].filter((e) => e.isDirectory)
    .map((e) => e.name).sort();
  for (const cls of classes) {
    const names = [...Deno.readDirSync(join(args.images, split, cls))].map((e) => e.name)
      .filter((n) => /\.(jpe?g|png)$/i.test(n)).sort().slice(0, perClass[split]);
    const dir = join(args.out, "images", split, cls);
    await Deno.mkdir(dir, { recursive: true });
    for (const name of names) {
      await Deno.copyFile(join(args.images, split, cls, name), join(dir, name));
    }
  }
  console.log(`${split}: ${classes.length} classes × ${perClass[split]} images`);
}

// The weights: every shard's tensors, rounded to float16 (round to nearest even), in one file.
const model = join(args.out, "ddpm-cifar10-small-f16");
await Deno.mkdir(model, { recursive: true });
const shards = [...Deno.readDirSync(args.checkpoint)].map((e) => e.name)
  .filter((n) => n.endsWith(".safetensors")).sort();
const tensors = new Map<string, TensorToWrite>();
let count = 0;
for (const shard of shards) {
  const file = await readSafetensorsFile(join(args.checkpoint, shard));
  for (const [name, entry] of file.tensors) {
    const data = new Uint16Array(new Float16Array(toFloat32(entry)).buffer);
    tensors.set(name, { dtype: "F16", shape: [...entry.shape], data });
    count += data.length;
  }
}
await writeSafetensorsFile(join(model, "diffusion_pytorch_model.safetensors"), tensors, {
  format: "pt",
});
await Deno.copyFile(join(args.checkpoint, "config.json"), join(model, "config.json"));
console.log(`${model}: ${tensors.size} tensors, ${count} parameters in float16`);
