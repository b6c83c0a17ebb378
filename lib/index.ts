// Public API of melanoma-lab: notebooks, scripts and tests import only from here.
export { MelanomaLabError, UnknownNameError, findNearestName } from "./util/errors.js";
export { findProjectRoot, findSharedDir } from "./util/paths.js";
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
export { splitByLesion, assertNoGroupLeakage, groupKeyOf, SplitError } from "./data/split.js";
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
export { resolveRunConfig, describeRunConfig, saveRunArtifact, loadRunArtifact, ConfigError } from "./workflow/runConfig.js";
export {
  prepareDataset,
  describeLoadedDataset,
  saveFeatureTable,
  loadFeatureTable,
  featureTableFromMatrix,
  scalarSeriesFromLogDir,
  formatMetricLine,
  createProgressPrinter,
  FeatureArtifactError,
} from "./workflow/pipeline.js";
export type { FeatureTable } from "./workflow/pipeline.js";
export type { RunConfig, RunConfigDefaults } from "./workflow/runConfig.js";

export { parseCliArgs, CliArgumentError } from "./util/cliArgs.js";
