/**
 * diffprobe: pre-trained diffusion UNets (DDPM, 2-D for images and 1-D for signals) as frozen
 * feature extractors. Load a backbone, freeze it, tap the output of block `i` at noise level
 * `t`, and train a small head on those features.
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, freeze, tf, useBackend } from "@diffprobe/core";
 *
 * await useBackend("auto"); // "wasm" on a plain CPU machine
 * const unet = freeze(createBackbone({
 *   _class_name: "UNet2DModel", sample_size: 32, block_out_channels: [32, 64],
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   layers_per_block: 1, norm_num_groups: 8,
 * }));
 * const images = tf.randomUniform([2, 32, 32, 3], -1, 1);
 * const { blocks } = unet.forward(images, 30, { capture: [4] }); // block 4 = down_blocks.1.0
 * assert.deepEqual(blocks.get("down_blocks.1.0")!.shape, [2, 16, 16, 64]);
 * unet.dispose();
 * ```
 *
 * @module
 */
export { tf } from "./src/backend/tf.ts";
export { type BackendName, useBackend, type UseBackendOptions } from "./src/backend/use_backend.ts";
export {
  createBackbone,
  type CreateBackboneOptions,
  loadBackbone,
  type LoadBackboneOptions,
  saveBackbone,
} from "./src/models/backbone.ts";
export type { Backbone, BlockRef, ForwardOptions, ForwardResult } from "./src/models/unet.ts";
export type { BlockInfo } from "./src/models/unet_plan.ts";
export type { UNet1DConfig, UNet2DConfig } from "./src/models/config.ts";
export { DDPM_CIFAR10_32_CONFIG } from "./src/models/presets.ts";
export { type NoiseSchedule, noiseSchedule, type ScheduleOptions } from "./src/models/schedule.ts";
export { sampleNoise } from "./src/models/noise.ts";
export { freeze, type FrozenBackbone } from "./src/probe/freeze.ts";
export { type Pooling, type Tap, tapBlock, type TapOptions } from "./src/probe/tap.ts";
export {
  extractFeatures,
  type ExtractionDevice,
  type ExtractionEngine,
  type ExtractOptions,
  type FeatureData,
  resolveEngine,
  weightChecksum,
} from "./src/probe/extract.ts";
export { type CachedFeatures, FeatureCache } from "./src/probe/feature_cache.ts";
export {
  createOnnxExtractor,
  type OnnxExecutionProvider,
  type OnnxExtractor,
  type OnnxExtractorOptions,
  onnxRuntimeAvailable,
  OnnxRuntimeUnavailableError,
} from "./src/engine/onnx_engine.ts";
export type { UpsampleLowering } from "./src/engine/onnx_graph.ts";
export type { BlockArray, Extractor } from "./src/engine/extractor.ts";
export type { Device, ResolvedDevice, TfjsDevice } from "./src/base/device.ts";
export {
  CUDA_PROVIDER_PACKAGE,
  type CudaProviderInstall,
  installCudaProvider,
  type InstallCudaProviderOptions,
  type InstalledFile,
  type OnnxRuntimeFolder,
  onnxRuntimeFolder,
  type PinnedFile,
  type ProviderPins,
} from "./src/engine/cuda_provider.ts";
export {
  type CudaStatus,
  cudaStatus,
  CudaUnavailableError,
  type DeviceChoice,
} from "./src/engine/device.ts";
export {
  chooseTrainEngine,
  createOnnxHeadTrainer,
  createOnnxUNetTrainer,
  fastDropoutMasks,
  type HeadGraphSpec,
  type HeadLike,
  headTrainSpec,
  type OnnxHeadTrainer,
  type OnnxHeadTrainerOptions,
  type OnnxTrainerState,
  type OnnxUNetTrainer,
  type OnnxUNetTrainerOptions,
  tfjsDropoutMasks,
  type TrainEngine,
  type UNetStepInput,
} from "./src/engine/train_engine.ts";
export {
  datasetChecksum,
  imageBatches,
  type ImageBatchOptions,
  type ImageDataset,
  subset,
} from "./src/data/image_dataset.ts";
export {
  CIFAR10_CLASSES,
  type Cifar10Split,
  readCifar10Binary,
  type ReadCifar10BinaryOptions,
} from "./src/data/cifar10_binary.ts";
export { readCifar10, type ReadCifar10Options } from "./src/data/cifar10.ts";
export { balancedSubset } from "./src/data/balanced_subset.ts";
export { readImageFolder, type ReadImageFolderOptions } from "./src/data/image_folder.ts";
export type { ReadIssue, ReadResult, TimeSeries } from "./src/data/timeseries.ts";
export { resampleHourly, type ResampleOptions } from "./src/data/resample.ts";
export { interpolateGaps, type InterpolateOptions } from "./src/data/interpolate.ts";
export {
  makeWindows,
  selectWindows,
  type WindowOptions,
  type Windows,
} from "./src/data/windows.ts";
export {
  chronologicalSplit,
  type Split,
  type SplitOptions,
  type TimeBoundary,
} from "./src/data/split.ts";
export {
  deriveYearSplit,
  type DeriveYearSplitOptions,
  type YearSplit,
  yearSplitBounds,
} from "./src/data/split_years.ts";
export { MinMaxScaler } from "./src/data/min_max_scaler.ts";
export {
  type WindowArrayOptions,
  type WindowArrays,
  windowsToArrays,
  windowsToTensors,
} from "./src/data/window_arrays.ts";
export {
  NDBC_SENTINELS,
  type NdbcOptions,
  ndbcStationId,
  parseNdbcStdmet,
  readNdbcStdmet,
} from "./src/data/ndbc.ts";
export {
  type CsvSeriesOptions,
  type CsvTimeFormat,
  parseCsvSeries,
  readCsvSeries,
} from "./src/data/csv_series.ts";
export { Head } from "./src/heads/head.ts";
export type {
  HeadOptions,
  HeadTargets,
  HeadTask,
  PredictOptions,
} from "./src/heads/head_options.ts";
export type { EpochLog, FitHistory, FitOptions } from "./src/heads/fit_options.ts";
export type { ClassificationMetrics, HeadMetrics, RegressionMetrics } from "./src/heads/metrics.ts";
export type { HeadManifest, SavedHead } from "./src/heads/head_file.ts";
export {
  LinearHead,
  type LinearHeadOptions,
  type RidgeOptions,
  type RidgeResult,
} from "./src/heads/linear_head.ts";
export { type MLPActivation, MLPHead, type MLPHeadOptions } from "./src/heads/mlp_head.ts";
export { AttentionHead, type AttentionHeadOptions } from "./src/heads/attention_head.ts";
export { loadHead } from "./src/heads/load_head.ts";
export {
  sweep,
  type SweepHead,
  type SweepOptions,
  type SweepResult,
  type SweepRidgeFit,
  type SweepRidgeOptions,
  type SweepRow,
  type SweepSplit,
} from "./src/probe/sweep.ts";
export { type HeatmapCell, type HeatmapOptions, heatmapSvg } from "./src/report/heatmap.ts";
export { type LinePlotOptions, linePlotSvg, type LineSeries } from "./src/report/line_plot.ts";
export { type ProgressBar, progressBar, type ProgressBarOptions } from "./src/report/progress.ts";
export {
  parseSafetensors,
  readSafetensorsFile,
  type ReadSafetensorsOptions,
  type SafetensorsDtype,
  type SafetensorsEntry,
  type SafetensorsFile,
  serializeSafetensors,
  type TensorToWrite,
  toFloat32,
  writeSafetensorsFile,
} from "./src/io/safetensors.ts";
export { SafetensorsError, type SafetensorsErrorCode } from "./src/io/errors.ts";
export { type HubModel, type HubModelOptions, resolveHubModel } from "./src/io/hub_model.ts";
export type { HubProgress } from "./src/io/hub_download.ts";
export type { HubSettingsOptions } from "./src/io/hub_settings.ts";
export { HubError, type HubErrorCode } from "./src/io/hub_error.ts";
export { type ConvGradMode, setConvGradMode } from "./src/nn/conv_grad.ts";
export {
  trainDiffusion,
  type TrainDiffusionOptions,
  type TrainDiffusionResult,
  type TrainStepInfo,
} from "./src/train/train_diffusion.ts";
export { writeLossCurve } from "./src/train/loss_curve.ts";
export {
  type DDIMSampleOptions,
  sampleDDIM,
  sampleDDPM,
  type SampleOptions,
  writeSamples,
  type WriteSamplesOptions,
} from "./src/train/sample.ts";
export { type ImageGridOptions, imageGridPng, writeImageGrid } from "./src/report/image_grid.ts";
export {
  type SignalPanelsOptions,
  signalPanelsSvg,
  writeSignalPanels,
} from "./src/report/signal_panels.ts";
