// Public API of melanoma-lab: notebooks, scripts and tests import only from here.
export { MelanomaLabError, UnknownNameError, findNearestName } from "./util/errors.js";
export { findProjectRoot, findSharedDir, resolveFeatureCacheDir } from "./util/paths.js";
export {
  BACKEND_NAMES,
  selectBackend,
  describeBackend,
  parseBackendName,
  BackendUnavailableError,
} from "./backend/selectBackend.js";
export type { BackendName, BackendSelection } from "./backend/selectBackend.js";
export { LESION_LABELS } from "./data/types.js";
export type { LesionLabel, LesionRecord, InputProblem } from "./data/types.js";
export { decodeImageRgb, ImageDecodeError, MAX_INPUT_PIXELS } from "./data/decodeImage.js";
export type { ResizePolicy } from "./data/decodeImage.js";
export { createRandom, shuffleWithSeed } from "./util/random.js";
export { splitByLesion, splitTrainValidationTest, assertNoGroupLeakage, groupKeyOf, SplitError } from "./data/split.js";
export type { Backbone, PreprocessingSpec } from "./models/types.js";
export {
  executeNotebook,
  findJupyterPython,
  listNotebooks,
  readStdoutText,
  JupyterMissingError,
  NotebookExecutionError,
  JUPYTER_DEBIAN_PACKAGES,
} from "./notebooks/executeNotebook.js";
export type { NotebookRun } from "./notebooks/executeNotebook.js";
export { resolveRunConfig, describeRunConfig, isSyntheticDataDir, saveRunArtifact, loadRunArtifact, ConfigError } from "./workflow/runConfig.js";
export {
  prepareDataset,
  describeLoadedDataset,
  saveFeatureTable,
  loadFeatureTable,
  featureTableFromMatrix,
  scalarSeriesFromLogDir,
  buildTrainingLogSections,
  formatMetricLine,
  createProgressPrinter,
  FeatureArtifactError,
} from "./workflow/pipeline.js";
export type { FeatureTable } from "./workflow/pipeline.js";
export type { RunConfig, RunConfigDefaults } from "./workflow/runConfig.js";

export { parseCliArgs, CliArgumentError } from "./util/cliArgs.js";
export { MetricInputError, SingleClassError, TargetNotReachableError, validateBinaryInputs, computeRocCurve, computeRocAuc, computePartialAucAboveTpr, computePrecisionRecallCurve, computeAveragePrecision, computeConfusionMatrix, deriveThresholdMetrics, computeMetricsAtThreshold, findThresholdForSensitivity, findThresholdForSpecificity, findYoudenThreshold, computeBalancedAccuracy, computeBrierScore, computeCalibration, computeExpectedCalibrationError } from "./evaluate/metrics.js";
export type { BinaryLabels, ProbabilityScores, ClassCounts, RocCurve, PrecisionRecallCurve, ConfusionMatrix, ThresholdMetrics, CalibrationBin, CalibrationSummary } from "./evaluate/metrics.js";
export { bootstrapMetric, forEachStratifiedResample, summarizeReplicates, computeQuantileOfSorted } from "./evaluate/bootstrap.js";
export type { BootstrapInterval, MetricFunction } from "./evaluate/bootstrap.js";
export { summarizeMetricsWithIntervals, buildMetricTable } from "./evaluate/summary.js";
export type { MetricSummaryRow } from "./evaluate/summary.js";
export { computeSubgroupMetrics, formatSubgroupTable, describeAgeBand, SUBGROUP_FIELDS, DEFAULT_AGE_BAND_EDGES_YEARS } from "./evaluate/subgroups.js";
export type { SubgroupField, SubgroupRecord, SubgroupMetrics } from "./evaluate/subgroups.js";
export { ChartInputError, buildRocFigure, computeRocBootstrapBand, selectRocCornerIndices, buildPrecisionRecallFigure, buildConfusionMatrixFigure, buildConfusionMatrixFigureAt, buildReliabilityFigure, buildThresholdSweepFigure, buildTrainingCurvesFigure, buildErrorGalleryHtml, buildHistogramsOverStepsFigure } from "./evaluate/charts.js";
export type { PlotlyFigure, PlotlyTrace, OperatingPointOption, TrainingCurvePoint, ScalarSeriesByRun, GalleryItem, HistogramSeriesStep } from "./evaluate/charts.js";
export { ReportInputError, writeHtmlReport, buildHtmlReport, formatReportCell } from "./evaluate/report.js";
export type { ReportSection, ReportTable, ReportCell } from "./evaluate/report.js";
export { showFigure, showHtml, showPng, buildFigureMimeBundle, resetPlotlyJsSent, NotebookDisplayUnavailableError } from "./display/showFigure.js";
export type { MimeBundle, DisplayDataContent } from "./display/showFigure.js";
export { buildFigureHtml, buildPlotlyLoaderHtml, loadPlotlyJsSource, serializeJsonForScript, describeFigureTitle, PlotlyAssetError } from "./display/plotlyHtml.js";
export { checkChartsRendered, ChartRenderCheckError, HEADLESS_CHROMIUM_ARGS } from "./display/checkChartsRendered.js";
export type { ChartRenderResult, ChartsRenderReport } from "./display/checkChartsRendered.js";
export { readEventFile, decodeEventFileBytes, decodeEvent, assertEventFileIntact, EventFileCorruptError } from "./logging/eventFile.js";
export type { EventFileContents, EventFileProblem, DecodedEvent, DecodedSummaryValue, DecodedSummaryMetadata, DecodedHistogramProto, DecodedLegacyImage, EventKind, SummaryValueKind } from "./logging/eventFile.js";
export { readLogDir, readRunDir, listEventFiles, LogDirNotFoundError } from "./logging/readLogDir.js";
export type { LogDirContents, RunContents, TensorPoint, TimeSeriesMetadata, TagSeries, ScalarPoint, HistogramBucket, HistogramStep, ImageStep, TextStep, PrCurveStep, GraphStep, HparamsEntry } from "./logging/readLogDir.js";
export { describeEncodedImage } from "./logging/imageInfo.js";
export type { EncodedImageInfo } from "./logging/imageInfo.js";
export { decodeHparamsPluginContent } from "./logging/hparamsProto.js";
export type { DecodedHparamsPluginData, JsonValue } from "./logging/hparamsProto.js";
export { decodeTensorProto, TensorDecodeError } from "./logging/tensorProto.js";
export type { DecodedTensor } from "./logging/tensorProto.js";
export { frameTfRecord, splitTfRecords, computeMaskedCrc32c, TFRECORD_OVERHEAD_BYTES } from "./logging/tfrecord.js";
export type { TfRecord, TfRecordProblem, TfRecordProblemKind, TfRecordSplit } from "./logging/tfrecord.js";
export { createEventWriter, EventWriter, EventWriterError, writeHparamsExperiment, formatEventFileName, EVENT_FILE_VERSION, EVENT_SOURCE_WRITER } from "./logging/eventWriter.js";
export type { EventWriterOptions } from "./logging/eventWriter.js";
export { computeHistogramBuckets, computePrCurve, encodeRawImageToPng, createScalarValue, createHistogramValue, createImageValue, createTextValue, createPrCurveValue, createKerasModelValue, createHparamsExperimentValue, createHparamsSessionStartValue, createHparamsSessionEndValue, SummaryInputError, PLUGIN_NAMES, HPARAMS_TAGS, DEFAULT_HISTOGRAM_BUCKET_COUNT, DEFAULT_PR_CURVE_THRESHOLD_COUNT } from "./logging/summaryValues.js";
export type { RawImage, PrCurveData, HParamValue, HParamSpec, HParamMetricSpec, HParamsSessionStatus, SummaryValueObject } from "./logging/summaryValues.js";
export { createTensorBoardCallback, TensorBoardCallback, TensorBoardCallbackError } from "./logging/tensorBoardCallback.js";
export type { TensorBoardCallbackOptions, TensorBoardRunWriters } from "./logging/tensorBoardCallback.js";
export { renderLabelledImageGrid, ImageGridError } from "./logging/imageGrid.js";
export type { LabelledImage, ImageGridOptions } from "./logging/imageGrid.js";
export { findTensorBoardExecutable, formatLogDirSummary, TENSORBOARD_INSTALL_HINT } from "./logging/tensorBoardLauncher.js";
export { loadDataset, loadLabelsCsvDataset, loadFolderPerClassDataset, detectDatasetLayout, summarizeProblems, parseLesionLabel, LABELS_CSV_FILE } from "./data/loadDataset.js";
export type { LoadedDataset, DatasetLayout, LoadDatasetOptions } from "./data/loadDataset.js";
export { DatasetFormatError, readCsvTable, requireCsvColumns } from "./data/csv.js";
export type { CsvTable } from "./data/csv.js";
export { loadHam10000MetadataDataset, loadIsic2019Dataset, loadIsic2020Dataset, labelForDiagnosis, LABEL_POLICIES, KNOWN_DIAGNOSES } from "./data/adapters.js";
export type { LabelPolicy, AdapterOptions } from "./data/adapters.js";
export { generateSyntheticDataset, SyntheticDataOptionError } from "./data/synthetic.js";
export type { SyntheticDatasetOptions, SyntheticDatasetResult } from "./data/synthetic.js";
export { loadImageBatch, mapWithConcurrency } from "./data/loadImageBatch.js";
export type { ImageBatch, LoadImageBatchOptions } from "./data/loadImageBatch.js";
export { computeClassWeights, computeOutputBiasInit, ClassImbalanceError } from "./data/imbalance.js";
export { createGroupedKFolds } from "./data/split.js";
export type { GroupedFold } from "./data/split.js";
export { randomAugmentImage, createTtaVariants, createDihedralViewTransform, applyShadesOfGray, transformImageDihedral, NO_AUGMENTATION, TTA_DIHEDRAL_VIEWS, AugmentationError } from "./data/augment.js";
export type { AugmentOptions } from "./data/augment.js";
export { describeDataset, countByLabel, makeLabelBarFigure, makeContactSheet } from "./data/explore.js";
export type { DatasetDescription, DescribedField, LabelBreakdownRow, DatasetBarFigure, ContactSheetOptions } from "./data/explore.js";
export { streamImageBatches, createImageCache } from "./data/stream.js";
export type { StreamImageBatchesOptions, StreamedImageBatch, ImageCache, ImageCacheStats } from "./data/stream.js";
export { downloadIsicArchive, labelOfIsicImage, IsicDownloadError, ISIC_API_BASE_URL } from "./data/isicArchive.js";
export type { IsicDownloadOptions, IsicDownloadResult } from "./data/isicArchive.js";
export { BACKBONE_NAMES, loadBackbone, parseBackboneName, describeBackbone, NSFWJS_PREPROCESSING } from "./models/backbones.js";
export type { BackboneName, LoadBackboneOptions } from "./models/backbones.js";
export { BackboneLoadError, cutAtFeatureLayer } from "./models/cutBackbone.js";
export { loadMobilenetV1Backbone, downloadLayersModelOnce, mobilenetV1FolderName, resolveMobilenetV1Source, resolveWeightsCacheDir, MOBILENET_V1_ALPHAS, MOBILENET_V1_BASE_URL, MOBILENET_V1_NOTOP_FOLDER, MOBILENET_V1_PREPROCESSING, WeightsDownloadError } from "./models/mobilenetV1.js";
export { preprocessImages, preprocessToFloat32, describePreprocessing, PixelShapeError } from "./models/preprocess.js";
export { countMultiplyAddsPerImage } from "./models/countMultiplyAdds.js";
export { extractFeatures, featureCacheFolder, FeatureInputError } from "./models/features.js";
export type { FeatureInput, FeatureMatrix, ExtractFeaturesOptions, PixelTransform } from "./models/features.js";
export { compileInferencePlan, disposeBackbone, InferencePlanError, predictBackboneFeatures, releaseInferencePlan } from "./models/inferencePlan.js";
export type { InferencePlan, InferencePlanSummary } from "./models/inferencePlan.js";
export { parseBackboneEnsemble, formatBackboneEnsemble, isBackboneEnsembleSpec, createBackboneEnsemble, loadBackboneEnsemble, disposeBackboneEnsemble, extractEnsembleFeatures, concatenateFeatureRows, BackboneEnsembleError, ENSEMBLE_MEMBER_SEPARATOR } from "./models/ensemble.js";
export type { BackboneMemberSpec, BackboneEnsemble, LoadBackboneEnsembleOptions, EnsembleFeatureMatrix, FeatureRowsPart } from "./models/ensemble.js";
export { compileNestedInferencePlan } from "./models/nestedInferencePlan.js";
export type { NestedInferencePlan, NestedInferencePlanSummary } from "./models/nestedInferencePlan.js";
export { trainHead, formatEpochMetrics, predictHeadProbabilities, toBinaryLabels, TrainHeadError } from "./train/trainHead.js";
export type { TrainHeadOptions, TrainHeadResult, EpochMetrics, TrainingCallback } from "./train/trainHead.js";
export { DEFAULT_MALIGNANT_DIAGNOSES, DIAGNOSIS_HEAD_LAYERS, DiagnosisTargetError, encodeDiagnosisTargets, normalizeDiagnosisCode, predictDiagnosisProbabilities } from "./train/diagnosisHead.js";
export type { DiagnosisTargets } from "./train/diagnosisHead.js";
export { CheckpointError, checkpointFolderName, computeValuesChecksum } from "./train/checkpoints.js";
export type { CheckpointFingerprint, FineTuneCheckpointFingerprint } from "./train/checkpoints.js";
export { createFsSaveHandler, saveLayersModelToDir, loadLayersModelFromDir, readModelArtifactsFromDir, ModelFileError, MODEL_JSON_FILE, WEIGHTS_BIN_FILE } from "./export/modelFiles.js";
export { buildTriageModel, exportTriageModel, loadTriageModel, makeTriageMetadata, predictMalignantProbability, TriageModelError, METADATA_JSON_FILE } from "./export/triageModel.js";
export type { TriageModelMetadata, TriageMetadataFields, LoadedTriageModel, ImagePrediction, EnsembleMemberMetadata } from "./export/triageModel.js";
export { buildEnsembleTriageModel, makeEnsembleTriageMetadata, ENSEMBLE_FEATURES_LAYER_NAME } from "./export/ensembleTriageModel.js";
export { chooseThresholdForSensitivity, triageDecision, triageImage, ThresholdError } from "./triage/triage.js";
export type { TriageResult, ThresholdChoice } from "./triage/triage.js";
export { scoreImagesToCsv, listImagesToScore, describeScoreSummary, ScoreInputError } from "./triage/scoreImages.js";
export type { ScoreSummary } from "./triage/scoreImages.js";
export { GradCamError, computeGradCam, renderGradCamOverlayPng, blendGradCamOverlay, mapJetColour, explainImageWithGradCam } from "./evaluate/gradCam.js";
export type { GradCamResult, GradCamOverlayOptions, ExplainedImage } from "./evaluate/gradCam.js";
export { GalleryInputError, OUTCOME_KINDS, selectOutcomeIndices, alignRecordsByImageId, buildErrorGalleryItems, buildErrorGallery, renderGradCamExamplesPng } from "./evaluate/gallery.js";
export type { OutcomeKind, ErrorGalleryItem, GradCamSource, ErrorGalleryOptions, GradCamExamplesOptions, GradCamExample } from "./evaluate/gallery.js";
export { SourceInputError, computeWithinSourceRocAuc, computeSourceOnlyRocAuc, summarizeSourceConfounding, formatSourceConfounding, buildSourceConfoundingSection } from "./evaluate/sourceConfounding.js";
export type { SourceName, SourceAucRow, WithinSourceAucResult, SourceOnlyAuc, SourceConfoundingSummary } from "./evaluate/sourceConfounding.js";
export {
  enableWasmThreads,
  parseWasmThreadCount,
  getWasmThreadsStatus,
  describeWasmThreads,
  WasmThreadsError,
  WASM_THREADS_MAX,
  WASM_THREADS_ENV,
  WASM_THREADS_TFJS_VERSION,
} from "./backend/wasmThreads.js";
export type { WasmThreadsPlan, WasmThreadsStatus } from "./backend/wasmThreads.js";
export { registerWasmGradientKernels, missingGradientKernels, isOwnWasmKernel, WASM_GRADIENT_KERNEL_NAMES, WASM_REPLACED_KERNEL_NAMES, WasmGradKernelError } from "./backend/wasmGradKernels.js";
export { fineTuneTopBlocks, findFineTuneCut, buildFineTunedTriageModel, splitTriageModel, FineTuneError } from "./train/fineTune.js";
export type { FineTuneOptions, FineTuneResult, FineTuneCut } from "./train/fineTune.js";
export { createLeaveOneSourceOutFolds } from "./experiments/sourceFolds.js";
export type { SourceFold } from "./experiments/sourceFolds.js";
export { crossValidateHead, summarizeFoldSpread, formatFoldSpread, toFoldRows, CrossValidationError, DEFAULT_HEAD_CONFIG, HEAD_TARGETS } from "./experiments/crossValidate.js";
export type { HeadConfig, HeadTarget, FeatureRows, FoldRows, FoldResult, FoldSpread, CrossValidationResult } from "./experiments/crossValidate.js";
export { nestedCrossValidateHeads, NestedCrossValidationError } from "./experiments/nestedCrossValidation.js";
export type { NestedConfiguration, NestedCrossValidationOptions, NestedCrossValidationResult, NestedOuterFold, NestedProgressEvent } from "./experiments/nestedCrossValidation.js";
export { concatenateFeatureViews, extractFeatureViews, FeatureViewError } from "./experiments/featureViews.js";
export type { FeatureViewOptions, FeatureViews } from "./experiments/featureViews.js";
export { createProgressBar, formatDurationSeconds } from "./experiments/progress.js";
export type { ProgressStream, ProgressBarOptions } from "./experiments/progress.js";
export { runExperiment, computeDataFingerprint, formatExperimentRunName, ExperimentConfigError, EXPERIMENT_SPLITS, EXPERIMENT_RUN_SCHEMA } from "./experiments/runExperiment.js";
export type { ExperimentOptions, ExperimentSplit, ExperimentRunSummary, ExperimentFoldSummary, ExperimentResult, JsonFoldSpread } from "./experiments/runExperiment.js";
export { loadExperimentRuns, buildLeaderboardRows, formatLeaderboardTable, buildLeaderboardReportTable, buildLeaderboardFigure, LeaderboardError } from "./experiments/leaderboard.js";
export type { LoadedExperimentRuns, LeaderboardRow } from "./experiments/leaderboard.js";
export { readKerasH5Weights, loadKerasH5IntoModel, KerasH5FormatError, KerasH5MismatchError } from "./models/kerasH5.js";
export type { KerasH5Weights, KerasH5Layer, KerasH5Weight, KerasH5LoadReport } from "./models/kerasH5.js";
export { buildVgg16, loadVgg16Backbone, downloadFileOnce, VGG16_WEIGHTS_URL, VGG16_WEIGHTS_FILE_NAME, VGG16_PREPROCESSING } from "./models/vgg16.js";
export type { BuildVgg16Options, LoadVgg16Options } from "./models/vgg16.js";
export { createBalancedBatchOrder } from "./data/balancedSampling.js";
export type { BalancedBatchOrderOptions } from "./data/balancedSampling.js";
export { ExperimentCheckpoints, ExperimentResumeError, backfillTensorBoardEpochs, describeResumeConfigDifferences, EXPERIMENT_RESUME_SCHEMA, FINE_TUNE_STAGE } from "./experiments/experimentResume.js";
export type { ResumeConfig } from "./experiments/experimentResume.js";
export type { CompletedFold } from "./experiments/crossValidate.js";
