// Public API of the logging stage (TensorBoard event files); lib/index.ts re-exports it.
export {
  readEventFile,
  decodeEventFileBytes,
  decodeEvent,
  assertEventFileIntact,
  EventFileCorruptError,
} from "./eventFile.js";
export type {
  EventFileContents,
  EventFileProblem,
  DecodedEvent,
  DecodedSummaryValue,
  DecodedSummaryMetadata,
  DecodedHistogramProto,
  DecodedLegacyImage,
  EventKind,
  SummaryValueKind,
} from "./eventFile.js";
export { readLogDir, readRunDir, listEventFiles, LogDirNotFoundError } from "./readLogDir.js";
export type {
  LogDirContents,
  RunContents,
  TensorPoint,
  TimeSeriesMetadata,
  TagSeries,
  ScalarPoint,
  HistogramBucket,
  HistogramStep,
  ImageStep,
  TextStep,
  PrCurveStep,
  GraphStep,
  HparamsEntry,
} from "./readLogDir.js";
export { decodeTensorProto, TensorDecodeError } from "./tensorProto.js";
export type { DecodedTensor } from "./tensorProto.js";
export { describeEncodedImage } from "./imageInfo.js";
export type { EncodedImageInfo } from "./imageInfo.js";
export { decodeHparamsPluginContent } from "./hparamsProto.js";
export type { DecodedHparamsPluginData, JsonValue } from "./hparamsProto.js";
export { frameTfRecord, splitTfRecords, computeMaskedCrc32c, TFRECORD_OVERHEAD_BYTES } from "./tfrecord.js";
export type { TfRecord, TfRecordProblem, TfRecordProblemKind, TfRecordSplit } from "./tfrecord.js";
// --- writer side (eventWriter, summaryValues, tensorBoardCallback, imageGrid, tensorBoardLauncher) ---
export {
  createEventWriter,
  EventWriter,
  EventWriterError,
  writeHparamsExperiment,
  formatEventFileName,
  EVENT_FILE_VERSION,
  EVENT_SOURCE_WRITER,
} from "./eventWriter.js";
export type { EventWriterOptions } from "./eventWriter.js";
export {
  computeHistogramBuckets,
  computePrCurve,
  encodeRawImageToPng,
  createScalarValue,
  createHistogramValue,
  createImageValue,
  createTextValue,
  createPrCurveValue,
  createKerasModelValue,
  createHparamsExperimentValue,
  createHparamsSessionStartValue,
  createHparamsSessionEndValue,
  SummaryInputError,
  PLUGIN_NAMES,
  HPARAMS_TAGS,
  DEFAULT_HISTOGRAM_BUCKET_COUNT,
  DEFAULT_PR_CURVE_THRESHOLD_COUNT,
} from "./summaryValues.js";
export type {
  RawImage,
  PrCurveData,
  HParamValue,
  HParamSpec,
  HParamMetricSpec,
  HParamsSessionStatus,
  SummaryValueObject,
} from "./summaryValues.js";
export { createTensorBoardCallback, TensorBoardCallback, TensorBoardCallbackError } from "./tensorBoardCallback.js";
export type { TensorBoardCallbackOptions, TensorBoardRunWriters } from "./tensorBoardCallback.js";
export { renderLabelledImageGrid, ImageGridError } from "./imageGrid.js";
export type { LabelledImage, ImageGridOptions } from "./imageGrid.js";
export { findTensorBoardExecutable, formatLogDirSummary, TENSORBOARD_INSTALL_HINT } from "./tensorBoardLauncher.js";
export {
  writeSampleImageGrids,
  writeTextSummaries,
  formatJsonAsMarkdown,
  formatModelCardMarkdown,
  SampleImagesError,
} from "./runSummaries.js";
export type { SampleImageRecord, SampleImageGridOptions, SampleImageGridSummary } from "./runSummaries.js";
