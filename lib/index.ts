// The public API of melanoma-lab, grouped by pipeline stage in pipeline order (a stage never
// imports a later one). Notebooks, scripts and benchmarks import only from here; tests may also
// import internals from their modules.

// ── Foundations: errors, paths, seeded randomness, command lines, progress
export { MelanomaLabError, UnknownNameError, findNearestName } from "./util/errors.js";
export { findProjectRoot, findSharedDir, resolveFeatureCacheDir } from "./util/paths.js";
export { createRandom, shuffleWithSeed } from "./util/random.js";
export {
  defineCli,
  parseCommandLine,
  parseCommandLineOrExit,
  formatCliHelp,
  describeExpectedValue,
  CliArgumentError,
} from "./util/cliArgs.js";
export type { CliSpec, CliOptionSpec, CliOptionType, CliValues, CliParseResult } from "./util/cliArgs.js";
export { createProgressBar, formatDurationSeconds } from "./util/progress.js";
export type { ProgressStream, ProgressBarOptions } from "./util/progress.js";

// ── Backend: which compute backend runs (tfjs-node-gpu → tfjs-node → wasm → cpu) and wasm threads
export {
  BACKEND_NAMES,
  selectBackend,
  describeBackend,
  parseBackendName,
  BackendUnavailableError,
} from "./backend/selectBackend.js";
export type { BackendName, BackendSelection } from "./backend/selectBackend.js";
export {
  enableWasmThreads,
  parseWasmThreadCount,
  getWasmThreadsStatus,
  describeWasmThreads,
  WasmThreadsError,
  WASM_THREADS_MAX,
  WASM_THREADS_ENV,
  measureIdleCores,
  decideAutoWasmThreads,
} from "./backend/wasmThreads.js";
export type { WasmThreadsPlan, WasmThreadsStatus } from "./backend/wasmThreads.js";
export { registerWasmGradientKernels, WasmGradKernelError } from "./backend/wasmGradKernels.js";
export {
  INFERENCE_RUNTIMES,
  RUNTIME_ENV,
  ORT_THREADS_ENV,
  selectInferenceRuntime,
  describeInferenceRuntime,
  parseRuntimeName,
  parseOrtThreads,
  RuntimeUnavailableError,
  OrtThreadsError,
} from "./backend/selectRuntime.js";
export type { InferenceRuntimeName, InferenceRuntimeSelection } from "./backend/selectRuntime.js";
export { buildMatMulOnnxModel, measureOnnxSgemmPeak, SgemmSizeError } from "./backend/onnxSgemm.js";
export type { SgemmPeak, SgemmSizeResult } from "./backend/onnxSgemm.js";

// ── Data: loading images and metadata, splits grouped by patient/lesion, augmentation, exploration
export { LESION_LABELS } from "./data/types.js";
export type { LesionLabel, LesionRecord, InputProblem } from "./data/types.js";
export { decodeImageRgb, ImageDecodeError } from "./data/decodeImage.js";
export { decodeImageRgbFromBuffer, readImageHeader, ImageBytesError } from "./data/decodeImage.js";
export type { ResizePolicy, ImageHeader } from "./data/decodeImage.js";
export {
  splitByLesion,
  splitTrainValidationTest,
  assertNoGroupLeakage,
  assignGroupIds,
  SplitError,
  createGroupedKFolds,
} from "./data/split.js";
export type { GroupedFold } from "./data/split.js";
export {
  loadDataset,
  loadLabelsCsvDataset,
  loadFolderPerClassDataset,
  detectDatasetLayout,
  summarizeProblems,
  LABELS_CSV_FILE,
} from "./data/loadDataset.js";
export type { LoadedDataset, DatasetLayout, LoadDatasetOptions } from "./data/loadDataset.js";
export { DatasetFormatError } from "./data/csv.js";
export type { CsvTable } from "./data/csv.js";
export {
  loadHam10000MetadataDataset,
  loadIsic2019Dataset,
  loadIsic2020Dataset,
  labelForDiagnosis,
  LABEL_POLICIES,
  KNOWN_DIAGNOSES,
} from "./data/adapters.js";
export type { LabelPolicy, AdapterOptions } from "./data/adapters.js";
export { generateSyntheticDataset, SyntheticDataOptionError, SYNTHETIC_SOURCES } from "./data/synthetic.js";
export type { SyntheticDatasetOptions, SyntheticDatasetResult } from "./data/synthetic.js";
export { loadImageBatch, mapWithConcurrency } from "./data/loadImageBatch.js";
export type { ImageBatch, LoadImageBatchOptions } from "./data/loadImageBatch.js";
export { computeClassWeights, computeOutputBiasInit, ClassImbalanceError } from "./data/imbalance.js";
export {
  randomAugmentImage,
  createTtaVariants,
  createDihedralViewTransform,
  applyShadesOfGray,
  applyColourConstancy,
  createColourConstancyTransform,
  parseColourConstancy,
  COLOUR_CONSTANCY_METHODS,
  transformImageDihedral,
  NO_AUGMENTATION,
  TTA_DIHEDRAL_VIEWS,
  AugmentationError,
} from "./data/augment.js";
export type { AugmentOptions, ColourConstancy, PixelTransform } from "./data/augment.js";
export {
  describeDataset,
  countByLabel,
  makeLabelBarFigure,
  makeContactSheet,
  renderImagePreviewPng,
} from "./data/explore.js";
export type {
  DatasetDescription,
  DescribedField,
  LabelBreakdownRow,
  DatasetBarFigure,
  ContactSheetOptions,
} from "./data/explore.js";
export { streamImageBatches } from "./data/stream.js";
export type { StreamImageBatchesOptions, StreamedImageBatch, ImageCache, ImageCacheStats } from "./data/stream.js";
export { downloadIsicArchive, IsicDownloadError, ISIC_API_BASE_URL } from "./data/isicArchive.js";
export type { IsicDownloadOptions, IsicDownloadResult } from "./data/isicArchive.js";
export { createBalancedBatchOrder, computeSourceBalancedWeights } from "./data/balancedSampling.js";
export type { BalancedBatchOrderOptions } from "./data/balancedSampling.js";

// ── Models: backbones (MobileNet, InceptionV3, VGG16, ONNX imports, ensembles), features, model files
export type {
  Backbone,
  BackboneOnnxFile,
  FeatureBackbone,
  OnnxRuntimeOnlyBackbone,
  PreprocessingSpec,
} from "./models/types.js";
export {
  BACKBONE_NAMES,
  loadBackbone,
  loadFeatureBackbone,
  parseBackboneName,
  describeBackbone,
} from "./models/backbones.js";
export type { BackboneName, LoadBackboneOptions } from "./models/backbones.js";
export { BackboneLoadError } from "./models/cutBackbone.js";
export { loadMobilenetV1Backbone, MOBILENET_V1_ALPHAS, WeightsDownloadError } from "./models/mobilenetV1.js";
export { importOnnxModel, decodeOnnxModel, OnnxImportError, ONNX_IMPORT_OPS } from "./models/onnxImport.js";
export {
  convertBackboneToOnnxFile,
  convertLayersModelToOnnx,
  ensureBackboneOnnx,
  OnnxExportError,
  ONNX_OPSET,
} from "./models/onnxConvert.js";
export type { OnnxConversion, OnnxConversionOptions } from "./models/onnxConvert.js";
export type { ImportOnnxOptions, ImportedOnnxModel } from "./models/onnxImport.js";
export {
  loadOnnxBackbone,
  loadOnnxZooBackbone,
  loadOnnxRuntimeBackbone,
  loadMobilenetV2ImagenetBackbone,
  IMAGENET_NORMALIZE,
  MOBILENET_V2_IMAGENET_URL,
  ONNX_ZOO_BACKBONES,
} from "./models/onnxBackbone.js";
export type {
  LoadOnnxBackboneOptions,
  LoadOnnxZooBackboneOptions,
  LoadOnnxRuntimeBackboneOptions,
  OnnxZooBackboneName,
  OnnxZooBackboneSpec,
} from "./models/onnxBackbone.js";
export {
  OnnxRuntimeOnlyError,
  isOnnxRuntimeOnly,
  requireTfjsBackbone,
  describeOnnxRuntimeOnly,
} from "./models/runtimeOnlyBackbone.js";
export { preprocessImages, PixelShapeError } from "./models/preprocess.js";
export { countMultiplyAddsPerImage } from "./models/countMultiplyAdds.js";
export { extractFeatures, FeatureInputError } from "./models/features.js";
export type { FeatureInput, FeatureMatrix, ExtractFeaturesOptions } from "./models/features.js";
export { predictOnnxFeatures, releaseOnnxSessions, OnnxBackboneError } from "./models/onnxFeatures.js";
export {
  compileInferencePlan,
  disposeBackbone,
  InferencePlanError,
  predictBackboneFeatures,
  releaseInferencePlan,
} from "./models/inferencePlan.js";
export type { InferencePlan, InferencePlanSummary } from "./models/inferencePlan.js";
export {
  parseBackboneEnsemble,
  formatBackboneEnsemble,
  isBackboneEnsembleSpec,
  createBackboneEnsemble,
  loadBackboneEnsemble,
  disposeBackboneEnsemble,
  extractEnsembleFeatures,
  BackboneEnsembleError,
} from "./models/ensemble.js";
export type {
  BackboneMemberSpec,
  BackboneEnsemble,
  LoadBackboneEnsembleOptions,
  EnsembleFeatureMatrix,
} from "./models/ensemble.js";
export {
  saveLayersModelToDir,
  loadLayersModelFromDir,
  ModelFileError,
  MODEL_JSON_FILE,
  WEIGHTS_BIN_FILE,
} from "./models/modelFiles.js";
export {
  readKerasH5Weights,
  loadKerasH5IntoModel,
  KerasH5FormatError,
  KerasH5MismatchError,
} from "./models/kerasH5.js";
export type { KerasH5Weights, KerasH5Layer, KerasH5Weight, KerasH5LoadReport } from "./models/kerasH5.js";
export { buildVgg16, loadVgg16Backbone } from "./models/vgg16.js";
export type { BuildVgg16Options, LoadVgg16Options } from "./models/vgg16.js";

// ── Train: the head on frozen features, diagnosis heads, fine-tuning, checkpoints
export { trainHead } from "./train/trainHead.js";
export type { TrainHeadOptions, TrainHeadResult } from "./train/trainHead.js";
export { formatEpochMetrics } from "./train/trainingLog.js";
export type { EpochMetrics, TrainingCallback } from "./train/trainingLog.js";
export { predictHeadProbabilities } from "./train/predictBatches.js";
export { TrainHeadError } from "./train/binaryLabels.js";
export {
  DEFAULT_MALIGNANT_DIAGNOSES,
  DiagnosisTargetError,
  encodeDiagnosisTargets,
  normalizeDiagnosisCode,
  predictDiagnosisProbabilities,
} from "./train/diagnosisHead.js";
export type { DiagnosisTargets } from "./train/diagnosisHead.js";
export { CheckpointError } from "./train/checkpoints.js";
export { fineTuneTopBlocks } from "./train/fineTune.js";
export type { FineTuneOptions, FineTuneResult } from "./train/fineTune.js";
export { findFineTuneCut, FineTuneError } from "./train/fineTuneCut.js";
export type { FineTuneCut } from "./train/fineTuneCut.js";
export { buildFineTunedTriageModel, splitTriageModel } from "./train/triageModelSplit.js";

// ── Logging: TensorBoard event files, written and read back
export { readEventFile, assertEventFileIntact, EventFileCorruptError } from "./logging/eventFile.js";
export { readLogDir, readRunDir, listEventFiles, LogDirNotFoundError } from "./logging/readLogDir.js";
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
} from "./logging/readLogDir.js";
export { TensorDecodeError } from "./logging/tensorProto.js";
export { createEventWriter, EventWriter, EventWriterError, writeHparamsExperiment } from "./logging/eventWriter.js";
export type { EventWriterOptions } from "./logging/eventWriter.js";
export { SummaryInputError } from "./logging/summaryValues.js";
export type { HParamValue, HParamSpec, HParamMetricSpec } from "./logging/summaryValues.js";
export {
  createTensorBoardCallback,
  TensorBoardCallback,
  TensorBoardCallbackError,
} from "./logging/tensorBoardCallback.js";
export type { TensorBoardCallbackOptions, TensorBoardRunWriters } from "./logging/tensorBoardCallback.js";
export { ImageGridError } from "./logging/imageGrid.js";
export {
  findTensorBoardExecutable,
  formatLogDirSummary,
  TENSORBOARD_INSTALL_HINT,
} from "./logging/tensorBoardLauncher.js";
export { SampleImagesError } from "./logging/runSummaries.js";

// ── Display: figures, tables and images in a notebook
export { showFigure, showHtml, showPng, NotebookDisplayUnavailableError } from "./display/showFigure.js";
export { showTable } from "./display/showTable.js";
export type { TableLike } from "./display/showTable.js";
export { PlotlyAssetError } from "./display/plotlyHtml.js";
export { ChartRenderCheckError } from "./display/checkChartsRendered.js";

// ── Evaluate: metrics with intervals, charts, reports, Grad-CAM, source confounding
export {
  MetricInputError,
  SingleClassError,
  TargetNotReachableError,
  computeRocCurve,
  computeRocAuc,
  computePartialAucAboveTpr,
  computePrecisionRecallCurve,
  computeAveragePrecision,
  computeConfusionMatrix,
  deriveThresholdMetrics,
  computeMetricsAtThreshold,
  findThresholdForSensitivity,
  findThresholdForSpecificity,
  findYoudenThreshold,
  computeBalancedAccuracy,
  computeBrierScore,
  computeCalibration,
  computeExpectedCalibrationError,
} from "./evaluate/metrics.js";
export type {
  BinaryLabels,
  ProbabilityScores,
  ClassCounts,
  RocCurve,
  PrecisionRecallCurve,
  ConfusionMatrix,
  ThresholdMetrics,
  CalibrationBin,
  CalibrationSummary,
} from "./evaluate/metrics.js";
export { bootstrapMetric, bootstrapPairedDifference } from "./evaluate/bootstrap.js";
export type {
  BootstrapInterval,
  BootstrapGroupIds,
  MetricFunction,
  PairedBootstrapDifference,
} from "./evaluate/bootstrap.js";
export { summarizeMetricsWithIntervals, buildMetricTable } from "./evaluate/summary.js";
export type { MetricSummaryRow } from "./evaluate/summary.js";
export {
  computeSubgroupMetrics,
  formatSubgroupTable,
  describeAgeBand,
  SUBGROUP_FIELDS,
  DEFAULT_AGE_BAND_EDGES_YEARS,
} from "./evaluate/subgroups.js";
export type { SubgroupField, SubgroupRecord, SubgroupMetrics } from "./evaluate/subgroups.js";
export {
  ChartInputError,
  buildRocFigure,
  buildPrecisionRecallFigure,
  buildConfusionMatrixFigure,
  buildConfusionMatrixFigureAt,
  buildReliabilityFigure,
  buildThresholdSweepFigure,
  buildTrainingCurvesFigure,
  buildHistogramsOverStepsFigure,
} from "./evaluate/charts.js";
export type {
  PlotlyFigure,
  PlotlyTrace,
  OperatingPointOption,
  TrainingCurvePoint,
  ScalarSeriesByRun,
  GalleryItem,
  HistogramSeriesStep,
} from "./evaluate/charts.js";
export { ReportInputError, writeHtmlReport, buildHtmlReport } from "./evaluate/report.js";
export type { ReportSection, ReportTable, ReportCell } from "./evaluate/report.js";
export { GradCamError, computeGradCam, renderGradCamOverlayPng, explainImageWithGradCam } from "./evaluate/gradCam.js";
export type { GradCamResult, GradCamOverlayOptions, ExplainedImage } from "./evaluate/gradCam.js";
export {
  GalleryInputError,
  OUTCOME_KINDS,
  alignRecordsByImageId,
  buildErrorGallery,
  renderGradCamExamplesPng,
} from "./evaluate/gallery.js";
export type {
  OutcomeKind,
  ErrorGalleryItem,
  GradCamSource,
  ErrorGalleryOptions,
  GradCamExamplesOptions,
  GradCamExample,
} from "./evaluate/gallery.js";
export {
  SourceInputError,
  computeWithinSourceRocAuc,
  computeSourceOnlyRocAuc,
  summarizeSourceConfounding,
  formatSourceConfounding,
  buildSourceConfoundingSection,
} from "./evaluate/sourceConfounding.js";
export type {
  SourceName,
  SourceAucRow,
  WithinSourceAucResult,
  SourceOnlyAuc,
  SourceConfoundingSummary,
} from "./evaluate/sourceConfounding.js";

// ── Export: the triage model for on-device use, with its metadata
export {
  buildTriageModel,
  exportTriageModel,
  loadTriageModel,
  makeTriageMetadata,
  predictMalignantProbability,
  predictMalignantProbabilities,
  predictMalignantProbabilityTta,
  DEFAULT_TTA_VIEWS,
  TriageModelError,
  METADATA_JSON_FILE,
} from "./export/triageModel.js";
export type {
  TriageModelMetadata,
  TriageMetadataFields,
  LoadedTriageModel,
  ImagePrediction,
  TtaImagePrediction,
  TtaPredictionOptions,
  EnsembleMemberMetadata,
  TriageMetricsBlock,
  TriageThresholdProvenance,
  TriagePolicyMetadata,
  CalibrationMetadata,
  CalibrationMethod,
  CalibrationQuality,
  TriageOperatingPointMetadata,
  ReassureLevelMetadata,
  OperatingPointCounts,
  ThresholdGroupCheck,
} from "./export/triageModel.js";
export {
  buildEnsembleTriageModel,
  makeEnsembleTriageMetadata,
  ENSEMBLE_FEATURES_LAYER_NAME,
} from "./export/ensembleTriageModel.js";
export { checkExportParity, ExportParityError } from "./export/exportParity.js";
export type { ExportParityResult } from "./export/exportParity.js";
export { exportTriageModelOnnx, ONNX_MODEL_FILE, ONNX_TRIAGE_OUTPUT_NAME } from "./export/onnxExport.js";
export type { TriageOnnxMetadata } from "./export/onnxExport.js";
export { openOnnxTriageScorer, predictMalignantProbabilityWithOnnx } from "./export/onnxScoring.js";
export { openTriageScorer } from "./export/triageScorer.js";
export type { TriageScorer } from "./export/triageScorer.js";
export type { OnnxScoringOptions, OnnxTriageScorer } from "./export/onnxScoring.js";
export {
  exportTriageModelVariants,
  formatVariantComparisonMarkdown,
  writeQuantizedModelFiles,
  TriageVariantError,
  TRIAGE_WEIGHT_DTYPES,
  VARIANTS_DIR,
} from "./export/quantizedVariants.js";
export type {
  ExportedTriageVariant,
  TriageOperatingPoint,
  TriageVariantExportOptions,
  TriageVariantMetadata,
  TriageVariantOperatingPoint,
  TriageVariantValidation,
  TriageVariantValidationImages,
  TriageWeightDtype,
} from "./export/quantizedVariants.js";
export {
  describeTrainingData,
  makeModelCard,
  measureTriageMetricsBlock,
  renderModelCardMarkdown,
  writeModelCardMarkdown,
  ModelCardError,
  MODEL_CARD_MD_FILE,
  DEFAULT_INTENDED_USE,
  DEFAULT_NOT_INTENDED_USE,
} from "./export/modelCard.js";
export type {
  ModelCardFields,
  TrainingDataDescription,
  TriageMetricInterval,
  TriageModelCard,
  TriagePerSourceResults,
} from "./export/modelCard.js";

// ── Triage: thresholds and decisions for new images
export {
  chooseThresholdForSensitivity,
  chooseThresholdForEverySource,
  triageDecision,
  triageImage,
  ThresholdError,
} from "./triage/triage.js";
export type {
  TriageResult,
  ThresholdChoice,
  EverySourceThresholdChoice,
  SourceThresholdCheck,
} from "./triage/triage.js";
export {
  scoreImagesToCsv,
  listImagesToScore,
  describeScoreSummary,
  scoreCsvColumns,
  scoreMetaPath,
  ScoreInputError,
  ScoreOutputMismatchError,
} from "./triage/scoreImages.js";
export type {
  ScoreSummary,
  ScoreImagesOptions,
  ScorePlan,
  ScoreOutputMeta,
  UnscorableImage,
} from "./triage/scoreImages.js";
export { auditThreshold } from "./triage/thresholdAudit.js";
export type { ThresholdAuditInput } from "./triage/thresholdAudit.js";
export {
  fitCalibration,
  applyCalibration,
  invertCalibration,
  computeNegativeLogLikelihood,
  CalibrationError,
  CALIBRATION_METHODS,
} from "./triage/calibration.js";
export type { FitCalibrationOptions } from "./triage/calibration.js";
export {
  fitTriagePolicy,
  decideTriage,
  decideTriageForModel,
  listRawOperatingPoints,
  formatTriagePolicy,
  requireTriagePolicy,
  TriagePolicyError,
  TRIAGE_SENTENCES,
} from "./triage/triagePolicy.js";
export type {
  TriagePolicy,
  TriageDecision,
  TriageDecisionInput,
  ModelDecisionInput,
  TriageLevel,
  FitTriagePolicyInput,
} from "./triage/triagePolicy.js";

// ── Serve: the point-inference service (POST /v1/triage, GET /healthz, GET /v1/model)
export {
  createTriageService,
  DEFAULT_SERVICE_LIMITS,
  ACCEPTED_IMAGE_CONTENT_TYPES,
  ServiceOptionError,
} from "./serve/triageService.js";
export type { TriageService, TriageServiceOptions, ServiceLimits } from "./serve/triageService.js";
export { decideWithModelPolicy } from "./serve/decide.js";
export type { DecideTriage, ServiceDecision, ServiceDecisionInput } from "./serve/decide.js";
export { describeScorerRuntime } from "./serve/imageScorer.js";
export type { ImageBytesScorer } from "./serve/imageScorer.js";

// ── Notebooks: executing notebooks headless through the kernel
export {
  executeNotebook,
  executeNotebooks,
  findJupyterPython,
  listNotebooks,
  JupyterMissingError,
  NotebookExecutionError,
  JUPYTER_DEBIAN_PACKAGES,
} from "./notebooks/executeNotebook.js";
export type { NotebookRun, NotebookProgressEvent, ExecuteNotebookOptions } from "./notebooks/executeNotebook.js";

// ── Experiments: cross-validated runs, run identity, threshold audits, leaderboard
export { createLeaveOneSourceOutFolds } from "./experiments/sourceFolds.js";
export type { SourceFold } from "./experiments/sourceFolds.js";
export { scoreExternalSet, summarizeExternalScores, ExternalSetError } from "./experiments/externalSet.js";
export type { ExternalScores, ExternalSetSummary, ExternalThresholdCheck } from "./experiments/externalSet.js";
export {
  crossValidateHead,
  summarizeFoldSpread,
  formatFoldSpread,
  toFoldRows,
  CrossValidationError,
  DEFAULT_HEAD_CONFIG,
  HEAD_TARGETS,
} from "./experiments/crossValidate.js";
export type {
  HeadConfig,
  HeadTarget,
  FeatureRows,
  FoldRows,
  FoldResult,
  FoldSpread,
  CrossValidationResult,
  CompletedFold,
} from "./experiments/crossValidate.js";
export { nestedCrossValidateHeads, NestedCrossValidationError } from "./experiments/nestedCrossValidation.js";
export type {
  NestedConfiguration,
  NestedCrossValidationOptions,
  NestedCrossValidationResult,
  NestedOuterFold,
  NestedProgressEvent,
} from "./experiments/nestedCrossValidation.js";
export { concatenateFeatureViews, extractFeatureViews, FeatureViewError } from "./experiments/featureViews.js";
export type { FeatureViewOptions, FeatureViews } from "./experiments/featureViews.js";
export { runExperiment } from "./experiments/runExperiment.js";
export type { ExperimentResult } from "./experiments/runExperiment.js";
export {
  computeDataFingerprint,
  formatExperimentRunName,
  ExperimentConfigError,
  EXPERIMENT_SPLITS,
  resolveRunIdentity,
  computeRunConfigHash,
} from "./experiments/runIdentity.js";
export type {
  ExperimentSplit,
  RunIdentityConfig,
  RunNameOptions,
  ExperimentHeadSettings,
} from "./experiments/runIdentity.js";
export { EXPERIMENT_RUN_SCHEMA } from "./experiments/runRecord.js";
export type {
  ExperimentRunSummary,
  ExperimentFoldSummary,
  JsonFoldSpread,
  ExperimentTransferSummary,
  JsonSourceTransferRow,
} from "./experiments/runRecord.js";
export {
  summarizeLeaveOneSourceOut,
  crossValidateLeaveOneSourceOut,
  evaluateExternalScores,
  formatTransferReport,
  buildTransferReportSection,
  TransferReportError,
} from "./experiments/transferReport.js";
export type {
  SourceTransferRow,
  LeaveOneSourceOutReport,
  LeaveOneSourceOutRun,
  ExternalTransferResult,
} from "./experiments/transferReport.js";
export type { ExperimentOptions } from "./experiments/experimentConfig.js";
export {
  DEFAULT_TRANSFER_RECIPE,
  DEFAULT_RECIPE_RULE,
  chooseTransferRecipe,
  explainRecipeWeightsError,
  resolveExperimentRecipe,
  RecipeWeightsMissingError,
} from "./experiments/defaultRecipe.js";
export type {
  TransferRecipe,
  RecipeTransferFigures,
  ExperimentRecipeFlags,
  ResolvedExperimentRecipe,
} from "./experiments/defaultRecipe.js";
export {
  loadExperimentRuns,
  buildLeaderboardRows,
  buildLeaderboardSections,
  formatLeaderboardTable,
  buildLeaderboardReportTable,
  buildLeaderboardFigure,
  LeaderboardError,
  LEADERBOARD_EVALUATIONS,
  LEADERBOARD_SORT_KEYS,
} from "./experiments/leaderboard.js";
export type {
  LoadedExperimentRuns,
  LeaderboardRow,
  LeaderboardSection,
  LeaderboardEvaluation,
  LeaderboardSortKey,
} from "./experiments/leaderboard.js";
export { ExperimentResumeError } from "./experiments/experimentResume.js";

// ── Workflow: the state the numbered notebooks pass to each other
export {
  resolveRunConfig,
  describeRunConfig,
  isSyntheticDataDir,
  saveRunArtifact,
  loadRunArtifact,
  ConfigError,
  RUN_RECIPES,
  selectDemoRecipe,
} from "./workflow/runConfig.js";
export type { RunConfig, RunConfigDefaults } from "./workflow/runConfig.js";
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
  createTrainingTensorBoardCallback,
  writeModelCardToTensorBoard,
  runPixelTransform,
  resolveRunHeadOptions,
} from "./workflow/pipeline.js";
export type { FeatureTable, TrainingTensorBoardOptions } from "./workflow/pipeline.js";
export { crossValidateRunLeaveOneSourceOut, scoreRunExternalSet } from "./workflow/runTransferReport.js";
