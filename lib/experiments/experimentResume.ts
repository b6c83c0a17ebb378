import fs from "node:fs";
import path from "node:path";
import { createEventWriter, type EventWriter } from "../logging/eventWriter.js";
import { listEventFiles, readRunDir } from "../logging/readLogDir.js";
import type { EpochMetrics } from "../train/trainingLog.js";
import { MelanomaLabError } from "../util/errors.js";
import type { CompletedFold, FoldResult, FoldRows } from "./crossValidate.js";

/** Thrown when `resume` finds checkpoints of a run made with other options or data, or unreadable ones. */
export class ExperimentResumeError extends MelanomaLabError {}

/** Value of `schema` in out/checkpoints/<run>/experiment.json. */
const EXPERIMENT_RESUME_SCHEMA = "melanoma-lab/experiment-resume@1";

/**
 * Sub-folder name of the fine-tuning stage: checkpoints in `<checkpoints>/<fold>/fine-tune/`
 * (next to the head's epoch folders) and TensorBoard runs in `logs/<run>/<fold>/fine-tune/`.
 */
export const FINE_TUNE_STAGE = "fine-tune";

/** What must be equal for a run to be resumed: every training option and the data fingerprint. */
export type ResumeConfig = Record<string, unknown>;

interface ResumeStateFile {
  schema: typeof EXPERIMENT_RESUME_SCHEMA;
  runName: string;
  startedAt: string;
  /** computeRunConfigHash of the run's configuration (state files written before it have none). */
  configHash?: string;
  config: ResumeConfig;
}

interface FoldFile {
  name: string;
  foldIndex: number;
  validationRows: number[];
  result: FoldResult;
  validationProbs: number[];
}

// JSON has no NaN/Infinity (a one-class fold has AUC NaN): written as these strings, read back as numbers.
const NON_FINITE = new Map<string, number>([
  ["NaN", NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
]);

function stringifyWithNonFinite(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v));
}

function parseWithNonFinite<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) =>
    typeof v === "string" && NON_FINITE.has(v) ? NON_FINITE.get(v) : v,
  ) as T;
}

function writeFileAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/**
 * Lists how two resume configs differ, one "key: checkpoint has X, this run has Y" per key
 * (compared as JSON); empty when they match.
 *
 * @example describeResumeConfigDifferences({ seed: 1, epochs: 4 }, { seed: 2, epochs: 4 }) // ["seed: checkpoint has 1, this run has 2"]
 */
export function describeResumeConfigDifferences(saved: ResumeConfig, current: ResumeConfig): string[] {
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])].sort();
  return keys.flatMap((key) => {
    const a = JSON.stringify(saved[key]);
    const b = JSON.stringify(current[key]);
    return a === b ? [] : [`${key}: checkpoint has ${a ?? "nothing"}, this run has ${b ?? "nothing"}`];
  });
}

/**
 * The per-run checkpoint store of an experiment: `<dir>/experiment.json` (config the run was
 * started with), `<dir>/<fold>/` trainHead checkpoints of the fold being trained (and `all/` for
 * the final model), `<dir>/<fold>/fine-tune/` fineTuneTopBlocks checkpoints of that fold,
 * `<dir>/folds/<fold>.json` results of finished folds.
 *
 * @example
 * const store = new ExperimentCheckpoints("out/checkpoints/my-run");
 * store.start("my-run", config); // fresh run
 * store.assertSameConfig(config); // on resume
 */
export class ExperimentCheckpoints {
  /** Root folder of this run's checkpoints. */
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  /** Path of experiment.json. */
  get stateFile(): string {
    return path.join(this.dir, "experiment.json");
  }

  /** Whether an earlier run of this name left checkpoints (experiment.json) to resume from. */
  exists(): boolean {
    return fs.existsSync(this.stateFile);
  }

  /** Deletes everything in the store. */
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Starts afresh: removes old checkpoints and records `config` (compared key by key on resume)
   * and the run's `configHash` (which the run-name check reads before a fresh start deletes anything).
   */
  start(runName: string, config: ResumeConfig, configHash?: string): void {
    this.remove();
    const state: ResumeStateFile = {
      schema: EXPERIMENT_RESUME_SCHEMA,
      runName,
      startedAt: new Date().toISOString(),
      ...(configHash ? { configHash } : {}),
      config,
    };
    writeFileAtomic(this.stateFile, JSON.stringify(state, null, 2) + "\n");
  }

  /** Throws {@link ExperimentResumeError} naming every option that differs from the checkpointed run's. */
  assertSameConfig(config: ResumeConfig): void {
    let state: ResumeStateFile;
    try {
      state = JSON.parse(fs.readFileSync(this.stateFile, "utf8")) as ResumeStateFile;
    } catch (err) {
      throw new ExperimentResumeError(
        `${this.stateFile}: cannot be read (${(err as Error).message}); expected the JSON written when the run started — run without resume to start afresh`,
      );
    }
    if (state.schema !== EXPERIMENT_RESUME_SCHEMA) {
      throw new ExperimentResumeError(
        `${this.stateFile}: schema ${JSON.stringify(state.schema)}, expected ${JSON.stringify(EXPERIMENT_RESUME_SCHEMA)}`,
      );
    }
    const differences = describeResumeConfigDifferences(state.config, config);
    if (differences.length > 0) {
      throw new ExperimentResumeError(
        `cannot resume from ${this.dir}: it was started with other options or data (${differences.join("; ")}); rerun with the same options, or without resume to start afresh`,
      );
    }
  }

  /**
   * Checkpoint folder of a fold ("fold-1", …) or of the final model ("all"): trainHead's, or with
   * `stage` {@link FINE_TUNE_STAGE} fineTuneTopBlocks's (a sub-folder, removed with the fold's).
   */
  trainingDir(name: string, stage?: typeof FINE_TUNE_STAGE): string {
    return stage ? path.join(this.dir, name, stage) : path.join(this.dir, name);
  }

  private foldFile(name: string): string {
    return path.join(this.dir, "folds", `${name}.json`);
  }

  /** Records a finished fold, then drops its epoch checkpoints (no longer needed). */
  saveCompletedFold(fold: FoldRows, foldIndex: number, result: FoldResult, validationProbs: Float32Array): void {
    const file: FoldFile = {
      name: fold.name,
      foldIndex,
      validationRows: [...fold.validationRows],
      result,
      validationProbs: Array.from(validationProbs),
    };
    writeFileAtomic(this.foldFile(fold.name), stringifyWithNonFinite(file));
    fs.rmSync(this.trainingDir(fold.name), { recursive: true, force: true });
  }

  /** A fold an earlier run finished, or undefined; throws when it was made from other rows. */
  loadCompletedFold(fold: FoldRows, foldIndex: number): CompletedFold | undefined {
    const file = this.foldFile(fold.name);
    if (!fs.existsSync(file)) return undefined;
    const saved = parseWithNonFinite<FoldFile>(fs.readFileSync(file, "utf8"));
    if (saved.foldIndex !== foldIndex || JSON.stringify(saved.validationRows) !== JSON.stringify(fold.validationRows)) {
      throw new ExperimentResumeError(
        `${file}: fold ${fold.name} was saved with other validation rows (index ${saved.foldIndex}, ${saved.validationRows.length} rows), this run has index ${foldIndex}, ${fold.validationRows.length} rows`,
      );
    }
    return { result: saved.result, validationProbs: Float32Array.from(saved.validationProbs) };
  }

  /** Removes epoch folders of `name` (and `stage`) other than `keepEpoch` (only the latest is needed to resume). */
  pruneEpochs(name: string, keepEpoch: number, stage?: typeof FINE_TUNE_STAGE): void {
    const dir = this.trainingDir(name, stage);
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir)) {
      const m = /^epoch-(\d+)$/.exec(entry);
      if (m && Number(m[1]) !== keepEpoch) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
    }
  }

  /** Epoch metrics saved in the latest checkpoint of `name` (and `stage`); empty when there is none. */
  readCheckpointHistory(name: string, stage?: typeof FINE_TUNE_STAGE): EpochMetrics[] {
    const latestFile = path.join(this.trainingDir(name, stage), "latest.json");
    if (!fs.existsSync(latestFile)) return [];
    const latest = JSON.parse(fs.readFileSync(latestFile, "utf8")) as { folder: string };
    const stateFile = path.join(this.trainingDir(name, stage), latest.folder, "state.json");
    if (!fs.existsSync(stateFile))
      throw new ExperimentResumeError(`${stateFile}: missing, though ${latestFile} points at it`);
    return (JSON.parse(fs.readFileSync(stateFile, "utf8")) as { history: EpochMetrics[] }).history;
  }
}

function stepsOf(runDir: string, tag: string): Set<number> {
  if (!fs.existsSync(runDir) || listEventFiles(runDir).length === 0) return new Set();
  return new Set((readRunDir(runDir).scalars[tag]?.points ?? []).map((p) => p.step));
}

/**
 * Writes, for a resumed training, the TensorBoard epoch scalars that the interrupted process
 * checkpointed but was killed before logging (trainHead checkpoints an epoch before its
 * callbacks run), with the tags and 0-based steps of createTensorBoardCallback:
 * `<logDir>/train` epoch_loss, epoch_accuracy, epoch_auc, epoch_learning_rate and
 * `<logDir>/validation` epoch_loss, epoch_accuracy, epoch_auc. Steps already logged are left
 * alone, so each epoch appears once. Returns the number of epochs written.
 *
 * @example backfillTensorBoardEpochs("logs/run/fold-2", history, 1e-3) // 1
 */
export function backfillTensorBoardEpochs(
  logDir: string,
  history: readonly EpochMetrics[],
  learningRate: number,
): number {
  const trainDir = path.join(logDir, "train");
  const validationDir = path.join(logDir, "validation");
  const trainSteps = stepsOf(trainDir, "epoch_loss");
  const validationSteps = stepsOf(validationDir, "epoch_loss");
  let train: EventWriter | undefined;
  let validation: EventWriter | undefined;
  let written = 0;
  try {
    for (const m of history) {
      const step = m.epoch - 1;
      let wrote = false;
      if (!trainSteps.has(step)) {
        train ??= createEventWriter(trainDir, { flushIntervalMs: 0 });
        train.addScalar("epoch_loss", m.trainLoss, step);
        train.addScalar("epoch_accuracy", m.trainAccuracy, step);
        train.addScalar("epoch_auc", m.trainAuc, step);
        train.addScalar("epoch_learning_rate", learningRate, step);
        wrote = true;
      }
      if (m.valLoss !== undefined && !validationSteps.has(step)) {
        validation ??= createEventWriter(validationDir, { flushIntervalMs: 0 });
        validation.addScalar("epoch_loss", m.valLoss, step);
        validation.addScalar("epoch_accuracy", m.valAccuracy!, step);
        validation.addScalar("epoch_auc", m.valAuc!, step);
        wrote = true;
      }
      if (wrote) written++;
    }
  } finally {
    train?.close();
    validation?.close();
  }
  return written;
}
