import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { loadLayersModelFromDir, saveLayersModelToDir } from "../models/modelFiles.js";
import { MelanomaLabError } from "../util/errors.js";

/** Thrown when a checkpoint cannot be read, or belongs to other data or options. */
export class CheckpointError extends MelanomaLabError {}

/** What must match for a checkpoint to be resumed: data shape and every training option. */
export interface CheckpointFingerprint {
  rows: number;
  featureDim: number;
  positives: number;
  seed: number;
  hiddenUnits: number;
  dropoutRate: number;
  l2: number;
  batchSize: number;
  learningRate: number;
  classWeights: [number, number];
  featureChecksum: number;
  /** "balanced" when batches were class-balanced (absent for shuffled batches). */
  sampling?: "balanced";
  /** Checksum of trainHead's rowWeights; recorded only when they were given. */
  rowWeightsChecksum?: number;
  /** Present only for a diagnosis-target head (trainHead's `diagnoses`), with the keys below. */
  target?: "diagnosis";
  /** Softmax classes, in column order. */
  diagnosisClasses?: string[];
  malignantDiagnoses?: string[];
  /** Loss weight of each diagnosis class. */
  diagnosisWeights?: number[];
  /** {@link computeValuesChecksum} of the rows' class indices. */
  diagnosesChecksum?: number;
}

/**
 * What must match to resume fine-tuning ({@link fineTuneTopBlocks}'s `checkpointDir`): cut, data
 * (activation checksums), starting weights and every training option.
 */
export interface FineTuneCheckpointFingerprint {
  stage: "fine-tune";
  backbone: string;
  cutLayerName: string;
  unfreezeBlocks: number;
  rows: number;
  validationRows: number;
  positives: number;
  seed: number;
  batchSize: number;
  learningRate: number;
  classWeights: [number, number];
  /** Dihedral views trained on (1 = no augmentation). */
  viewCount: number;
  /** {@link computeValuesChecksum} of the train (view 0) and validation activations. */
  activationChecksum: number;
  validationChecksum: number;
  /** Checksum of the top model's weights before the first step (the trained head and backbone top). */
  initialWeightsChecksum: number;
  /** Present only when fine-tuning a diagnosis-target head, with the keys below. */
  target?: "diagnosis";
  /** Softmax classes, in column order. */
  diagnosisClasses?: string[];
  /** Loss weight of each diagnosis class. */
  diagnosisWeights?: number[];
  /** {@link computeValuesChecksum} of the training rows' class indices. */
  diagnosesChecksum?: number;
}

interface CheckpointState {
  epoch: number;
  fingerprint: object;
  history: { epoch: number; valAuc?: number }[];
  optimizerWeights: tf.io.WeightsManifestEntry[];
  /** Adam's running β^t products, saved exactly (setWeights recomputes them with pow, which rounds differently). */
  adamAccBetas?: [number, number];
  savedAt: string;
}

type AdamInternals = { accBeta1?: tf.Variable; accBeta2?: tf.Variable };

/**
 * A cheap order-sensitive checksum of up to ~4096 evenly spaced values (rounded to 1e-4), so a
 * checkpoint is not resumed on different data or starting weights. Not a hash of every value.
 *
 * @example computeValuesChecksum(new Float32Array([0.5, 1])) // 165000 (0·31 + 5000, then ·31 + 10000)
 */
export function computeValuesChecksum(values: ArrayLike<number>, start = 0): number {
  let h = start | 0;
  const stride = Math.max(1, Math.floor(values.length / 4096));
  for (let i = 0; i < values.length; i += stride) h = (Math.imul(h, 31) + Math.round(values[i] * 1e4)) | 0;
  return h;
}

/**
 * Folder name of an epoch's checkpoint.
 *
 * @example checkpointFolderName(3) // "epoch-0003"
 */
export function checkpointFolderName(epoch: number): string {
  return `epoch-${String(epoch).padStart(4, "0")}`;
}

/**
 * Writes `<dir>/epoch-NNNN/` (head model.json + weights.bin, Adam state optimizer.bin, and
 * state.json with history and fingerprint) then points `<dir>/latest.json` at it (written to a
 * temp file and renamed, so a kill leaves the previous pointer intact). Used by trainHead's and
 * fineTuneTopBlocks's `checkpointDir` options (`fingerprint` is a {@link CheckpointFingerprint}
 * or {@link FineTuneCheckpointFingerprint}).
 *
 * @example await writeCheckpoint("runs/a/checkpoints", 3, fingerprint, head, adam, history);
 */
export async function writeCheckpoint<F extends object = CheckpointFingerprint>(
  dir: string,
  epoch: number,
  fingerprint: F,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  history: readonly { epoch: number; valAuc?: number }[],
): Promise<string> {
  const folder = path.join(dir, checkpointFolderName(epoch));
  await saveLayersModelToDir(model, folder);
  const named = await optimizer.getWeights();
  const { data, specs } = await tf.io.encodeWeights(named);
  // getWeights() makes a fresh scalar for the step count; the moments are live variables.
  tf.dispose(named.filter((w) => !(w.tensor instanceof tf.Variable)).map((w) => w.tensor));
  await fs.promises.writeFile(
    path.join(folder, "optimizer.bin"),
    Buffer.from(Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data),
  );
  const adam = optimizer as unknown as AdamInternals;
  const adamAccBetas: [number, number] | undefined =
    adam.accBeta1 instanceof tf.Variable && adam.accBeta2 instanceof tf.Variable
      ? [adam.accBeta1.dataSync()[0], adam.accBeta2.dataSync()[0]]
      : undefined;
  const state: CheckpointState = {
    epoch,
    fingerprint,
    history: [...history],
    optimizerWeights: specs,
    adamAccBetas,
    savedAt: new Date().toISOString(),
  };
  await fs.promises.writeFile(path.join(folder, "state.json"), JSON.stringify(state));
  const tmp = path.join(dir, `latest.json.${process.pid}.tmp`);
  await fs.promises.writeFile(tmp, JSON.stringify({ epoch, folder: checkpointFolderName(epoch) }));
  await fs.promises.rename(tmp, path.join(dir, "latest.json"));
  return folder;
}

async function copyWeightsFrom(folder: string, into: tf.LayersModel): Promise<void> {
  const saved = await loadLayersModelFromDir(folder);
  try {
    into.setWeights(saved.getWeights());
  } finally {
    saved.dispose();
  }
}

/** Weights of one epoch, kept because its validation AUC was the best so far. */
export interface KeptEpochWeights {
  auc: number;
  epoch: number;
  weights: tf.Tensor[];
}

/**
 * The `restoreBestWeights` bookkeeping of trainHead and fineTuneTopBlocks: copies of the model's
 * weights at the epoch with the best validation AUC so far (the first such epoch on ties),
 * optionally seeded from a resumed checkpoint. Call `dispose()` when training ends.
 *
 * @example
 * const keeper = new BestEpochWeights();
 * keeper.adopt(restored?.best); // after a resume
 * keeper.offer(model, epoch, valAuc); // each epoch
 * const keptEpoch = keeper.restoreInto(model, lastEpoch); keeper.dispose();
 */
export class BestEpochWeights {
  private best: KeptEpochWeights | undefined;

  /** Takes over the best epoch a resumed checkpoint found (see readCheckpoint's `best`). */
  adopt(restored: KeptEpochWeights | undefined): void {
    if (!restored) return;
    this.dispose();
    this.best = restored;
  }

  /** Keeps `model`'s current weights when `auc` beats the best so far. */
  offer(model: tf.LayersModel, epoch: number, auc: number): void {
    if (this.best && !(auc > this.best.auc)) return;
    this.best?.weights.forEach((t) => t.dispose());
    this.best = { auc, epoch, weights: model.getWeights().map((t) => t.clone()) };
  }

  /** Puts the kept weights into `model` and returns their epoch; `lastEpoch` when none were kept. */
  restoreInto(model: tf.LayersModel, lastEpoch: number): number {
    if (!this.best) return lastEpoch;
    model.setWeights(this.best.weights);
    return this.best.epoch;
  }

  /** Frees the kept copies. */
  dispose(): void {
    this.best?.weights.forEach((t) => t.dispose());
    this.best = undefined;
  }
}

/**
 * Restores the latest checkpoint in `dir` into `model` and `optimizer` (Adam moments and step
 * count). Returns undefined when `dir` holds none; throws {@link CheckpointError} when it was
 * written for other data or options. With `wantBest`, also returns clones of the weights of the
 * epoch with the best valAuc so far (read from that epoch's folder). Used by trainHead's and
 * fineTuneTopBlocks's `resume`; every key of `fingerprint` or of the saved one must be equal in both
 * (an optional key present on one side only is a difference).
 *
 * @example const restored = await readCheckpoint("runs/a/checkpoints", fingerprint, head, adam, false);
 */
export async function readCheckpoint<F extends object = CheckpointFingerprint>(
  dir: string,
  fingerprint: F,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  wantBest: boolean,
): Promise<{ epoch: number; history: unknown[]; best?: KeptEpochWeights } | undefined> {
  const latestPath = path.join(dir, "latest.json");
  if (!fs.existsSync(latestPath)) return undefined;
  const latest = JSON.parse(fs.readFileSync(latestPath, "utf8")) as { epoch: number; folder: string };
  const folder = path.join(dir, latest.folder);
  const statePath = path.join(folder, "state.json");
  if (!fs.existsSync(statePath))
    throw new CheckpointError(`${statePath}: missing (latest.json points at epoch ${latest.epoch})`);
  const state = JSON.parse(fs.readFileSync(statePath, "utf8")) as CheckpointState;
  const saved = state.fingerprint as Record<string, unknown>;
  const current = fingerprint as Record<string, unknown>;
  // Keys of either side: an optional key (sampling, target, …) recorded by only one run differs too.
  for (const key of new Set([...Object.keys(current), ...Object.keys(saved)])) {
    if (JSON.stringify(saved[key]) !== JSON.stringify(current[key])) {
      throw new CheckpointError(
        `${statePath}: checkpoint was written with ${key} ${JSON.stringify(saved[key]) ?? "unset"}, this run has ${JSON.stringify(current[key]) ?? "unset"}; use another checkpointDir or resume: false`,
      );
    }
  }
  await copyWeightsFrom(folder, model);
  const bytes = fs.readFileSync(path.join(folder, "optimizer.bin"));
  const decoded = tf.io.decodeWeights(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
    state.optimizerWeights,
  );
  const named = state.optimizerWeights.map((spec) => ({ name: spec.name, tensor: decoded[spec.name] }));
  await optimizer.setWeights(named);
  tf.dispose(Object.values(decoded));
  const adam = optimizer as unknown as AdamInternals;
  if (state.adamAccBetas && adam.accBeta1 instanceof tf.Variable && adam.accBeta2 instanceof tf.Variable) {
    const [b1, b2] = state.adamAccBetas;
    tf.tidy(() => {
      adam.accBeta1!.assign(tf.scalar(b1));
      adam.accBeta2!.assign(tf.scalar(b2));
    });
  }
  let best: KeptEpochWeights | undefined;
  if (wantBest) {
    const scored = state.history.filter((h) => typeof h.valAuc === "number");
    if (scored.length > 0) {
      const top = scored.reduce((a, b) => (b.valAuc! > a.valAuc! ? b : a));
      const saved = await loadLayersModelFromDir(path.join(dir, checkpointFolderName(top.epoch)));
      best = { auc: top.valAuc!, epoch: top.epoch, weights: saved.getWeights().map((t) => t.clone()) };
      saved.dispose();
    }
  }
  return { epoch: state.epoch, history: state.history, best };
}
