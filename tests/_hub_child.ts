/**
 * Run by tests/hub_test.ts in a `deno run` subprocess with narrower (or wider) permissions than
 * the test task's: `deno run <perms> tests/_hub_child.ts <load|resolve> <repo> '<options JSON>'`.
 * Prints one JSON line: `{ parameters }` or `{ folder, downloaded }`, or `{ error, code }`.
 */
import { HubError, loadBackbone, resolveHubModel } from "../mod.ts";

const [mode, repo, json] = Deno.args;
const options = JSON.parse(json ?? "{}");
try {
  if (mode === "load") {
    const unet = await loadBackbone(repo, options);
    console.log(JSON.stringify({ parameters: unet.parameterCount() }));
    unet.dispose();
  } else {
    const model = await resolveHubModel(repo, options);
    console.log(JSON.stringify({ folder: model.folder, downloaded: model.downloaded }));
  }
} catch (error) {
  console.log(JSON.stringify({
    error: error instanceof Error ? error.message : String(error),
    code: error instanceof HubError ? error.code : undefined,
  }));
}
