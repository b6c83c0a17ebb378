import * as tf from "@tensorflow/tfjs";
import { registerWasmGradientKernels } from "../backend/wasmGradKernels.js";
import type { ResizePolicy } from "../data/decodeImage.js";
import { createDihedralViewTransform, TTA_DIHEDRAL_VIEWS } from "../data/augment.js";
import type { InputProblem, LesionRecord } from "../data/types.js";
import { extractFeatures, type FeatureMatrix } from "../models/features.js";
import { releaseInferencePlan } from "../models/inferencePlan.js";
import type { Backbone } from "../models/types.js";
import { createRandom, shuffleWithSeed } from "../util/random.js";
import { toBinaryLabels } from "./binaryLabels.js";
import {
  BestEpochWeights,
  computeValuesChecksum,
  readCheckpoint,
  writeCheckpoint,
  type FineTuneCheckpointFingerprint,
} from "./checkpoints.js";
import { buildTopModel, findFineTuneCut, FineTuneError } from "./fineTuneCut.js";
import { encodeRecordDiagnoses, readDiagnosisTarget } from "./fineTuneTargets.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../models/headLayers.js";
import {
  binaryCrossEntropy,
  categoricalCrossEntropyFromLogits,
  resolveClassWeights,
  resolveDiagnosisWeights,
} from "./losses.js";
import { predictRowsInBatches } from "./predictBatches.js";
import { scoreBinaryPredictions } from "./scoreBinaryPredictions.js";
import { toKerasLogs, type EpochMetrics, type TrainingCallback } from "./trainingLog.js";
import { assertFitsWasmHeap } from "./wasmHeapBudget.js";

// The pieces live in focused files; re-exported so lib/index.ts and existing imports keep their paths.

/** Options of {@link fineTuneTopBlocks}. */
export interface FineTuneOptions {
  /** Number of top backbone blocks to train (MobileNetV2: 1 = block_16, 2 = block_15 + block_16, …). */
  unfreezeBlocks: number;
  epochs: number;
  /** Adam learning rate; use about 1/10 of the head's (Keras's two-stage recipe), e.g. 1e-4. */
  learningRate: number;
  batchSize: number;
  /** Seed of batch order, dropout masks and augmentation views. */
  seed: number;
  /** Folder of the on-disk activation cache (same layout as the feature cache); omitted = memory only. */
  cacheDir?: string;
  /**
   * Train on the 8 dihedral views (flips × quarter turns) of each training image, one drawn per
   * image per epoch. Their activations are computed and cached up front (8× the bottom passes).
   */
  augment?: boolean;
  /**
   * Loss weight of [benign, malignant], or "balanced" (n / (2·n_class)). Default [1, 1]. With a
   * diagnosis-target head, as trainHead's: "balanced" weighs each diagnosis n / (K·n_diagnosis)
   * (K = classes with rows), a pair weighs each row by its label.
   */
  classWeights?: [number, number] | "balanced";
  /**
   * Required with a diagnosis-target head (trainHead's `diagnoses` option; pass that result's
   * `diagnosisClasses`), refused with a binary one: the softmax's classes in column order. The
   * head is then fine-tuned on its own loss, class-weighted categorical cross-entropy of the
   * diagnosis softmax against each training record's `diagnosis`; validation metrics stay on
   * P(malignant). A record whose diagnosis is missing, not among these classes, or contradicts its
   * label (by the head's malignant-sum layer) → FineTuneError naming it.
   */
  diagnosisClasses?: readonly string[];
  /** How image files are made square (default "center-crop"); part of the cache key. */
  resizePolicy?: ResizePolicy;
  /** Images per forward pass of the frozen bottom when filling the cache (default 16). */
  cacheBatchSize?: number;
  /**
   * Folder for per-epoch checkpoints, as trainHead's: `epoch-0001/` … (top blocks + head weights,
   * Adam moments and step count, epoch history, fingerprint) and `latest.json`, written after
   * each epoch's metrics and before the callbacks run. Omitted = no checkpoints.
   */
  checkpointDir?: string;
  /**
   * With checkpointDir: continue after its latest checkpoint (same backbone cut, data, starting
   * head and options required, else CheckpointError naming what differs), giving the result of
   * an uninterrupted run. Default false (start afresh).
   */
  resume?: boolean;
  /**
   * tf.Callback-like objects (e.g. createTensorBoardCallback(...)), awaited at each event, as in
   * trainHead: 0-based epochs, Keras log names (loss, accuracy, auc, learning_rate, val_*). A
   * resumed run calls onEpochBegin/onEpochEnd only for the epochs it trains.
   */
  callbacks?: readonly TrainingCallback[];
  /** Called after each epoch (metrics as in trainHead; valAuc etc. when validation is non-empty). */
  onEpochEnd?: (metrics: EpochMetrics) => void | Promise<void>;
  /**
   * With validation records: keep the weights of the epoch with the best validation AUC (as
   * trainHead's option), so the result compares fairly with a head whose best epoch was kept.
   * A resumed run finds the best epoch in its checkpoints (each epoch's folder must still be
   * there). Default false: the last epoch's weights.
   */
  restoreBestWeights?: boolean;
  /** Progress of the activation cache: images done and total, per split. */
  onCacheProgress?: (split: "train" | "validation", done: number, total: number) => void;
}

/** What {@link fineTuneTopBlocks} returns. */
export interface FineTuneResult {
  /**
   * Cached activation [n, h, w, c] of `cutLayerName` → probability of malignant [n, 1]: the
   * fine-tuned top blocks, the backbone's pooling and the fine-tuned head (its own weights; the
   * backbone is not modified). Build the image → probability model with {@link buildFineTunedTriageModel}.
   */
  head: tf.LayersModel;
  /** One entry per epoch 1…epochs (a resumed run's first entries come from the checkpoint). */
  history: EpochMetrics[];
  /** Training images per second over this call's optimisation steps (forward + backward + update); NaN when it ran none. */
  imagesPerSecond: number;
  /** Epoch whose weights `head` holds: the last, or the best by valAuc with restoreBestWeights. */
  keptEpoch: number;
  /** Wall time of each optimisation step this call ran, in order, milliseconds (the first includes warm-up). */
  stepDurationsMs: number[];
  /** Epoch a resumed run continued after (0 when it started afresh). */
  resumedFromEpoch: number;
  /** Layers whose weights were trained (backbone top layers, then head layers). */
  trainableLayerNames: string[];
  /** Backbone layer whose output is cached and fed to `head`. */
  cutLayerName: string;
  /** Shape of one cached activation, e.g. [7, 7, 160]. */
  activationShape: number[];
  /** Records whose image could not be read (dropped from training/validation). */
  problems: InputProblem[];
  /** Activations read from the cache instead of computed. */
  cacheHits: number;
  /** Milliseconds spent filling (or reading) the activation cache. */
  cacheMs: number;
}

interface CachedActivations {
  /** [views][rows × activationSize], view 0 the image as is. */
  views: Float32Array[];
  labels: Int32Array;
  /** Index in the records of each row. */
  sourceIndices: readonly number[];
  rows: number;
  problems: InputProblem[];
  cacheHits: number;
}

async function cacheActivations(
  bottom: Backbone,
  records: readonly LesionRecord[],
  split: "train" | "validation",
  viewCount: number,
  options: FineTuneOptions,
): Promise<CachedActivations> {
  const extractOptions = {
    cacheDir: options.cacheDir,
    batchSize: options.cacheBatchSize ?? 16,
    resizePolicy: options.resizePolicy ?? "center-crop",
  };
  // One pass per view, each view's transform named in the cache key: a cached view is neither
  // decoded nor transformed again. A file that fails fails in every view.
  const perView: FeatureMatrix[] = [];
  for (let v = 0; v < viewCount; v++) {
    perView.push(
      await extractFeatures(bottom, records, {
        ...extractOptions,
        pixelTransform: createDihedralViewTransform(v),
        onProgress: (d, t) => options.onCacheProgress?.(split, v * t + d, viewCount * t),
      }),
    );
  }
  const m = perView[0];
  const labels = toBinaryLabels(
    m.sourceIndices.map((i) => records[i].label),
    `${split} labels`,
  );
  return {
    views: perView.map((p) => p.features),
    labels,
    sourceIndices: m.sourceIndices,
    rows: m.rows,
    problems: m.problems,
    cacheHits: perView.reduce((a, p) => a + p.cacheHits, 0),
  };
}

function checksumWeights(model: tf.LayersModel): number {
  let h = 0;
  for (const w of model.weights) h = computeValuesChecksum(w.read().dataSync(), h);
  return h;
}

function predictActivations(
  model: tf.LayersModel,
  values: Float32Array,
  shape: number[],
  batchSize: number,
): Float32Array {
  return predictRowsInBatches(values, shape, batchSize, 1, (x) => model.predict(x) as tf.Tensor);
}

/**
 * Fine-tunes the top `unfreezeBlocks` blocks of a backbone together with an already trained head
 * (Keras's second stage of transfer learning: head first on frozen features, then the top blocks
 * with a lower learning rate). The model is split at the cut ({@link findFineTuneCut}): the frozen
 * bottom runs once per image and its activations are cached (in memory, and on disk under
 * `cacheDir` keyed like the feature cache), so each step runs only the top blocks + head.
 * Every BatchNormalization layer runs in inference mode: moving mean/variance never change
 * (those in unfrozen blocks still train their scale and offset). Adam on class-weighted binary
 * cross-entropy (a diagnosis-target head: on its own loss, categorical cross-entropy of the
 * diagnosis softmax; see `diagnosisClasses`), head dropout by hand with per-step seeds, batches shuffled from `seed`: the same
 * seed gives the same result. Neither `backbone` nor `head` is modified.
 * With `checkpointDir` every epoch is checkpointed; `resume: true` continues after the latest
 * one. Batch order, dropout masks and augmentation views are drawn from seeds of (seed, epoch,
 * batch), so a resumed run trains exactly as an uninterrupted one (on the same backend).
 * On wasm it registers the missing gradient kernels first ({@link registerWasmGradientKernels});
 * the training path itself uses only tfjs ops, so tfjs-node(-gpu) runs it unchanged.
 *
 * @example
 * const ft = await fineTuneTopBlocks(backbone, headModel, trainRecords, valRecords, {
 *   unfreezeBlocks: 2, epochs: 3, learningRate: 1e-4, batchSize: 8, seed: 7, cacheDir: ".cache/activations",
 * });
 * console.log(ft.history.at(-1)?.valAuc, `${ft.imagesPerSecond.toFixed(1)} img/s`);
 */
export async function fineTuneTopBlocks(
  backbone: Backbone,
  head: tf.LayersModel,
  train: readonly LesionRecord[],
  validation: readonly LesionRecord[],
  options: FineTuneOptions,
): Promise<FineTuneResult> {
  const { epochs, batchSize, learningRate, seed } = options;
  if (!(Number.isInteger(epochs) && epochs >= 1))
    throw new FineTuneError(`epochs: received ${epochs}, expected a positive integer`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1))
    throw new FineTuneError(`batchSize: received ${batchSize}, expected a positive integer`);
  if (!(learningRate > 0 && Number.isFinite(learningRate)))
    throw new FineTuneError(`learningRate: received ${learningRate}, expected a positive number`);
  if (train.length === 0) throw new FineTuneError("train: received 0 records, expected at least one of each label");
  // wasm lacks conv gradient kernels, and a missing one leaves its heap unusable: supply them
  // before the first gradient (a no-op when already registered; other backends have their own).
  if (tf.getBackend() === "wasm") registerWasmGradientKernels();
  const diagnosisTarget = readDiagnosisTarget(head, options.diagnosisClasses);
  const recordDiagnoses = diagnosisTarget ? encodeRecordDiagnoses(train, diagnosisTarget, "train") : undefined;
  const cut = findFineTuneCut(backbone, options.unfreezeBlocks);
  if (tf.getBackend() === "wasm") assertFitsWasmHeap(backbone, cut, options.unfreezeBlocks, batchSize);
  const activationSize = cut.activationShape.reduce((a, b) => a * b, 1);
  const top = await buildTopModel(backbone, head, cut);
  // The cached-activation "backbone": same weights id and input, features = raw activation at the cut.
  const bottomModel = tf.model({
    inputs: backbone.model.inputs,
    outputs: backbone.model.getLayer(cut.cutLayerName).output as tf.SymbolicTensor,
  });
  const bottom: Backbone = {
    ...backbone,
    model: bottomModel,
    featureLayerName: `${cut.cutLayerName}:activation`,
    featureDim: activationSize,
    // The backbone's ONNX file outputs pooled features, not this activation: extractFeatures
    // converts the bottom itself (ONNX Runtime when it loads, else tfjs).
    onnx: undefined,
  };
  const optimizer = tf.train.adam(learningRate);
  // Weights of the best validation epoch so far (restoreBestWeights); freed in `finally`.
  const best = new BestEpochWeights();
  // Before any update: the starting weights are part of what a checkpoint must match.
  const initialWeightsChecksum = options.checkpointDir ? checksumWeights(top) : 0;
  try {
    const cacheStarted = performance.now();
    const viewCount = options.augment ? TTA_DIHEDRAL_VIEWS.length : 1;
    const trainSet = await cacheActivations(bottom, train, "train", viewCount, options);
    const valSet = await cacheActivations(bottom, validation, "validation", 1, options);
    const cacheMs = performance.now() - cacheStarted;
    const n = trainSet.rows;
    const positives = trainSet.labels.reduce((a, b) => a + b, 0);
    if (positives === 0 || positives === n)
      throw new FineTuneError(
        `train: need both labels among readable images, received ${positives} malignant and ${n - positives} benign`,
      );
    const classWeights = resolveClassWeights(options.classWeights, n - positives, positives);
    // Diagnosis head: each row's softmax column and the per-class loss weights.
    const rowDiagnoses = recordDiagnoses
      ? Int32Array.from(trainSet.sourceIndices, (i) => recordDiagnoses[i])
      : undefined;
    let diagnosisWeights: number[] | undefined;
    if (diagnosisTarget && rowDiagnoses) {
      const counts = diagnosisTarget.classes.map(() => 0);
      for (const k of rowDiagnoses) counts[k]++;
      diagnosisWeights = resolveDiagnosisWeights(
        options.classWeights,
        counts,
        diagnosisTarget.malignantMask,
        classWeights,
      );
    }

    // Training forward pass: top blocks + pooling through a sub-model (BN in inference mode),
    // then the head's layers one by one so dropout can be seeded per step as in trainHead.
    const headLayerNames = head.layers.filter((l) => l.getClassName() !== "InputLayer").map((l) => l.name);
    const featureTensor = top.getLayer(backbone.model.outputLayers[0].name).output as tf.SymbolicTensor;
    const featureModel = tf.model({ inputs: top.inputs, outputs: featureTensor });
    const headLayers = headLayerNames.map((name) => top.getLayer(name));
    // A diagnosis head trains on its logits (the layers after them, softmax and the frozen
    // malignant sum, only turn them into P(malignant)).
    const lossLayers = diagnosisTarget
      ? headLayers.slice(0, headLayers.findIndex((l) => l.name === DIAGNOSIS_HEAD_LAYERS.logits) + 1)
      : headLayers;
    const forward = (x: tf.Tensor, dropoutSeed: number | undefined): tf.Tensor => {
      let h = featureModel.apply(x, { training: false }) as tf.Tensor;
      for (const layer of lossLayers) {
        if (layer.getClassName() === "Dropout") {
          const rate = (layer.getConfig() as { rate: number }).rate;
          if (dropoutSeed !== undefined && rate > 0) h = tf.dropout(h, rate, undefined, dropoutSeed);
        } else {
          h = layer.apply(h, { training: false }) as tf.Tensor;
        }
      }
      return diagnosisTarget ? h : tf.reshape(h, [-1]);
    };
    const variables = top.trainableWeights.map((w) => w.read() as tf.Variable);
    const trainableLayerNames = top.layers.filter((l) => l.trainableWeights.length > 0).map((l) => l.name);
    const history: EpochMetrics[] = [];
    const stepDurationsMs: number[] = [];
    let stepImages = 0;
    const batchesPerEpoch = Math.ceil(n / batchSize);
    const batchValues = new Float32Array(batchSize * activationSize);
    const fingerprint: FineTuneCheckpointFingerprint = {
      stage: "fine-tune",
      backbone: backbone.name,
      cutLayerName: cut.cutLayerName,
      unfreezeBlocks: options.unfreezeBlocks,
      rows: n,
      validationRows: valSet.rows,
      positives,
      seed,
      batchSize,
      learningRate,
      classWeights,
      viewCount,
      activationChecksum: computeValuesChecksum(trainSet.views[0]),
      validationChecksum: computeValuesChecksum(valSet.views[0]),
      initialWeightsChecksum,
      // Only diagnosis heads record their target, so binary checkpoints written before still resume.
      ...(diagnosisTarget && rowDiagnoses
        ? {
            target: "diagnosis" as const,
            diagnosisClasses: [...diagnosisTarget.classes],
            diagnosisWeights: diagnosisWeights!,
            diagnosesChecksum: computeValuesChecksum(rowDiagnoses),
          }
        : {}),
    };
    let resumedFromEpoch = 0;
    const keepBest = options.restoreBestWeights === true && valSet.rows > 0;
    if (options.checkpointDir && options.resume) {
      const restored = await readCheckpoint(options.checkpointDir, fingerprint, top, optimizer, keepBest);
      if (restored) {
        resumedFromEpoch = restored.epoch;
        history.push(...(restored.history as EpochMetrics[]));
        best.adopt(restored.best);
      }
    }
    const callbacks = options.callbacks ?? [];
    for (const cb of callbacks) cb.setModel?.(top);
    for (const cb of callbacks) await cb.onTrainBegin?.({});
    for (let epoch = resumedFromEpoch + 1; epoch <= epochs; epoch++) {
      const started = performance.now();
      for (const cb of callbacks) await cb.onEpochBegin?.(epoch - 1, {});
      // Per-epoch stream (not one running generator), so a resumed epoch draws the same views.
      const rand = createRandom(Math.imul(seed * 31 + 17, 1_000_003) + epoch);
      const order = shuffleWithSeed(
        Array.from({ length: n }, (_, i) => i),
        seed * 7919 + epoch,
      );
      let lossSum = 0;
      for (let b = 0; b < batchesPerEpoch; b++) {
        const indices = order.slice(b * batchSize, (b + 1) * batchSize);
        indices.forEach((row, k) => {
          const view = trainSet.views[viewCount === 1 ? 0 : Math.floor(rand() * viewCount)];
          batchValues.set(view.subarray(row * activationSize, (row + 1) * activationSize), k * activationSize);
        });
        const dropoutSeed = seed * 1_000_003 + (epoch - 1) * batchesPerEpoch + b;
        const stepStarted = performance.now();
        const cost = tf.tidy(() => {
          const xb = tf.tensor(batchValues.subarray(0, indices.length * activationSize), [
            indices.length,
            ...cut.activationShape,
          ]);
          if (rowDiagnoses && diagnosisWeights) {
            const ob = tf
              .oneHot(
                tf.tensor1d(
                  indices.map((i) => rowDiagnoses[i]),
                  "int32",
                ),
                diagnosisWeights.length,
              )
              .toFloat() as tf.Tensor2D;
            const wb = tf.tensor1d(
              indices.map((i) => diagnosisWeights![rowDiagnoses[i]]),
              "float32",
            );
            return optimizer.minimize(
              () =>
                tf.mean(
                  tf.mul(categoricalCrossEntropyFromLogits(ob, forward(xb, dropoutSeed) as tf.Tensor2D), wb),
                ) as tf.Scalar,
              true,
              variables,
            )!;
          }
          const yb = tf.tensor1d(
            indices.map((i) => trainSet.labels[i]),
            "float32",
          );
          const wb = tf.tensor1d(
            indices.map((i) => classWeights[trainSet.labels[i]]),
            "float32",
          );
          return optimizer.minimize(
            () => tf.mean(tf.mul(binaryCrossEntropy(yb, forward(xb, dropoutSeed) as tf.Tensor1D), wb)) as tf.Scalar,
            true,
            variables,
          )!;
        });
        lossSum += (await cost.data())[0];
        cost.dispose();
        stepDurationsMs.push(performance.now() - stepStarted);
        stepImages += indices.length;
      }
      const evalBatch = Math.max(batchSize, 32);
      const trainScore = scoreBinaryPredictions(
        trainSet.labels,
        predictActivations(top, trainSet.views[0], cut.activationShape, evalBatch),
      );
      const metrics: EpochMetrics = {
        epoch,
        trainLoss: lossSum / batchesPerEpoch,
        trainAccuracy: trainScore.accuracy,
        trainAuc: trainScore.auc,
        elapsedMs: 0,
      };
      if (valSet.rows > 0) {
        const valScore = scoreBinaryPredictions(
          valSet.labels,
          predictActivations(top, valSet.views[0], cut.activationShape, evalBatch),
        );
        metrics.valLoss = valScore.loss;
        metrics.valAccuracy = valScore.accuracy;
        metrics.valAuc = valScore.auc;
      }
      metrics.elapsedMs = performance.now() - started;
      history.push(metrics);
      if (keepBest && metrics.valAuc !== undefined) best.offer(top, epoch, metrics.valAuc);
      if (options.checkpointDir)
        await writeCheckpoint(options.checkpointDir, epoch, fingerprint, top, optimizer, history);
      const logs = toKerasLogs(metrics, learningRate);
      for (const cb of callbacks) await cb.onEpochEnd?.(epoch - 1, logs);
      await options.onEpochEnd?.(metrics);
    }
    for (const cb of callbacks) await cb.onTrainEnd?.({});
    const keptEpoch = best.restoreInto(top, history.length);
    return {
      head: top,
      keptEpoch,
      history,
      imagesPerSecond: stepImages > 0 ? stepImages / (stepDurationsMs.reduce((a, b) => a + b, 0) / 1000) : NaN,
      stepDurationsMs,
      resumedFromEpoch,
      trainableLayerNames,
      cutLayerName: cut.cutLayerName,
      activationShape: cut.activationShape,
      problems: [...trainSet.problems, ...valSet.problems],
      cacheHits: trainSet.cacheHits + valSet.cacheHits,
      cacheMs,
    };
  } catch (err) {
    top.dispose();
    throw err;
  } finally {
    // The activation cache compiled an inference plan (own folded weights) for this call's bottom model.
    releaseInferencePlan(bottom);
    optimizer.dispose();
    best.dispose();
  }
}
