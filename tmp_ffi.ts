import { chooseTrainEngine } from "./src/engine/train_engine.ts";
console.log(await chooseTrainEngine("auto"));
