import * as tf from "@tensorflow/tfjs";
import { createBalancedBatchOrder } from "../data/balancedSampling.js";
import type { LesionLabel } from "../data/types.js";
import {
  BestEpochWeights,
  computeValuesChecksum,
  readCheckpoint,
  writeCheckpoint,
  type CheckpointFingerprint,
} from "./checkpoints.js";
import { DEFAULT_MALIGNANT_DIAGNOSES, encodeDiagnosisTargets, type DiagnosisTargets } from "./diagnosisHead.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../models/headLayers.js";
import { shuffleWithSeed } from "../util/random.js";
import { computeOutputBiasFromCounts } from "../data/imbalance.js";
import { computeRocAucExact } from "../util/rocAuc.js";
import { TrainHeadError, toBinaryLabels } from "./binaryLabels.js";
import {
  binaryCrossEntropy,
  categoricalCrossEntropyFromLogits,
  resolveClassWeights,
  resolveDiagnosisWeights,
  sumOfSquares,
} from "./losses.js";
import { toKerasLogs, type EpochMetrics, type TrainingCallback } from "./trainingLog.js";
import { scoreBinaryPredictions } from "./scoreBinaryPredictions.js";

// Moved to focused files; re-exported so lib/index.ts and existing imports keep their paths.

/** Options of {@link trainHead}. */
export interface TrainHeadOptions {
  /** Seed of weight initialisation, batch shuffling and dropout masks. */
  seed: number;
  /** Units of the hidden relu layer; 0 = none (logistic regression on features). Default 128. */
  hiddenUnits?: number;
  /** Dropout after the hidden layer, in [0, 1). Default 0.3. */
  dropoutRate?: number;
  /** L2 penalty on the kernels (added to the loss as l2 · Σw²). Default 1e-4. */
  l2?: number;
  /** Default 20. */
  epochs?: number;
  /** Default 32. */
  batchSize?: number;
  /** Adam learning rate. Default 1e-3. */
  learningRate?: number;
  /**
   * Loss weight of each class: [benign, malignant], or "balanced" (n / (2·n_class)). Default [1, 1].
   * With `diagnoses`, "balanced" weighs each diagnosis n / (K·n_diagnosis) (K = classes present),
   * and [benign, malignant] weighs each row by its label.
   */
  classWeights?: [number, number] | "balanced";
  /**
   * Loss weight of each training row (≥ 0, finite), multiplied with its class (or diagnosis)
   * weight, e.g. {@link computeSourceBalancedWeights} so each clinic counts as much as any other.
   * Default 1 for every row.
   */
  rowWeights?: ArrayLike<number>;
  /**
   * How each epoch's mini-batches are drawn: "shuffle" (every image once, seeded order) or
   * "balanced" (half malignant per batch, minority oversampled; see createBalancedBatchOrder),
   * still ceil(n / batchSize) batches per epoch. With "balanced", leave classWeights unset
   * (unweighted) unless both are wanted on purpose. With `diagnoses` it keeps this meaning
   * (half malignant, by label; diagnoses within each half as they come). Default "shuffle".
   */
  sampling?: "shuffle" | "balanced";
  /**
   * One diagnosis code per training row (HAM10000's mel, nv, bcc, …; trimmed, lower-cased).
   * When given, the head learns a softmax over the diagnoses present (sorted; see the result's
   * `diagnosisClasses`) with categorical cross-entropy, and the returned model still outputs
   * P(malignant) [n, 1]: a frozen Dense(K → 1, no bias) with kernel 1 for the malignant
   * diagnoses and 0 for the others sums the softmax's malignant columns. Hidden layer, dropout,
   * L2, checkpoints, callbacks and validation metrics (on P(malignant)) work as without it.
   * A missing code ("", "unknown", undefined) → DiagnosisTargetError naming the row.
   */
  diagnoses?: readonly (string | undefined)[];
  /**
   * With `diagnoses`: the codes counted as malignant. Every row with one of them must be labelled
   * malignant and every other row benign (else DiagnosisTargetError naming the row, its
   * diagnosis and label). Default {@link DEFAULT_MALIGNANT_DIAGNOSES} (akiec, bcc, mel, scc).
   */
  malignantDiagnoses?: readonly string[];
  /** Validation features (row-major, same featureDim) and 0/1 labels, evaluated each epoch. */
  validation?: { features: Float32Array; labels: ArrayLike<number> | readonly LesionLabel[] };
  /** When true and validation is given, the weights of the epoch with the best valAuc are kept. */
  restoreBestWeights?: boolean;
  /** AUC function (labels 0/1, scores) → AUC; default an exact rank-sum AUC. */
  computeAuc?: (labels: ArrayLike<number>, scores: ArrayLike<number>) => number;
  /**
   * Folder for per-epoch checkpoints (`epoch-0001/` … with head weights, Adam state and
   * history, plus `latest.json`). Omitted = no checkpoints.
   */
  checkpointDir?: string;
  /**
   * With checkpointDir: continue from its latest checkpoint (same data and options required),
   * giving the same result as an uninterrupted run. Default false (start afresh).
   */
  resume?: boolean;
  /** tf.Callback-like objects (e.g. createTensorBoardCallback(...)), awaited at each event. */
  callbacks?: readonly TrainingCallback[];
  /** Called after each epoch; may be async (e.g. to log to TensorBoard). */
  onEpochEnd?: (metrics: EpochMetrics) => void | Promise<void>;
}

/** A trained head and how training went. */
export interface TrainHeadResult {
  /** Input [n, featureDim] → output [n, 1] probability of malignant. */
  model: tf.LayersModel;
  history: EpochMetrics[];
  /** Epoch whose weights the model holds (the last, or the best by valAuc with restoreBestWeights). */
  keptEpoch: number;
  featureDim: number;
  /**
   * Initial output bias, log(positives / negatives) of the training labels (with `diagnoses`:
   * the log-odds of the untrained P(malignant); the softmax biases start at log(n_k / n)).
   */
  initialBias: number;
  /** Epoch a resumed run continued after (0 when it started afresh). */
  resumedFromEpoch: number;
  /** With `diagnoses`: the softmax's classes, in column order (sorted diagnosis codes present in training). */
  diagnosisClasses?: string[];
  /** With `diagnoses`: the classes summed into P(malignant) (sorted). */
  malignantClasses?: string[];
}

interface HeadLayers {
  hidden?: tf.layers.Layer;
  /** Dense(1, sigmoid), or with diagnoses Dense(K, linear) giving the logits. */
  output: tf.layers.Layer;
  dropoutRate: number;
  /** Diagnosis target: softmax and the frozen malignant-sum layer after `output`. */
  diagnosis?: { softmax: tf.layers.Layer; malignantSum: tf.layers.Layer };
}

/** The output layer's result: P(malignant) [n, 1], or the diagnosis logits [n, K]. */
function outputOf(layers: HeadLayers, x: tf.Tensor2D, training: boolean, dropoutSeed: number): tf.Tensor2D {
  let h: tf.Tensor = x;
  if (layers.hidden) {
    h = layers.hidden.apply(h) as tf.Tensor;
    // Dropout by hand with a per-step seed: a seeded tf.layers.dropout reuses one mask every step.
    if (training && layers.dropoutRate > 0) h = tf.dropout(h, layers.dropoutRate, undefined, dropoutSeed);
  }
  return layers.output.apply(h) as tf.Tensor2D;
}

function probabilities(layers: HeadLayers, x: tf.Tensor2D, training: boolean, dropoutSeed: number): tf.Tensor1D {
  let out: tf.Tensor = outputOf(layers, x, training, dropoutSeed);
  // The same layers the returned model ends with, so training scores what the model outputs.
  if (layers.diagnosis) out = layers.diagnosis.malignantSum.apply(layers.diagnosis.softmax.apply(out)) as tf.Tensor;
  return out.reshape([-1]) as tf.Tensor1D;
}

function evaluate(
  layers: HeadLayers,
  features: tf.Tensor2D,
  labels: Int32Array,
  computeAuc: (l: ArrayLike<number>, s: ArrayLike<number>) => number,
): { loss: number; accuracy: number; auc: number } {
  const probsTensor = tf.tidy(() => probabilities(layers, features, false, 0));
  const probs = probsTensor.dataSync() as Float32Array;
  probsTensor.dispose();
  return scoreBinaryPredictions(labels, probs, computeAuc);
}

/** The rows `indices` of a row-major [n, dim] matrix, in that order, as a new [indices.length, dim] array. */
function copyRows(matrix: Float32Array, dim: number, indices: readonly number[]): Float32Array {
  const out = new Float32Array(indices.length * dim);
  for (let r = 0; r < indices.length; r++) out.set(matrix.subarray(indices[r] * dim, (indices[r] + 1) * dim), r * dim);
  return out;
}

/**
 * Trains a dense classification head on cached backbone features:
 * input [featureDim] → (dense relu hiddenUnits → dropout) → dense(1, sigmoid), output bias
 * initialised to log(pos/neg). Adam on class-weighted binary cross-entropy + L2, mini-batches
 * shuffled from `seed` each epoch (or class-balanced with `sampling: "balanced"`); the same seed gives the same weights and metrics.
 * Only dense layers train, which the wasm backend supports (it lacks conv gradients).
 * With `diagnoses` (one code per row) the output is instead dense(K) → softmax over the
 * diagnoses (biases log(n_k / n)) → frozen dense(K → 1) summing the malignant ones, trained on
 * categorical cross-entropy; the model's input and output are the same ([n, featureDim] →
 * [n, 1] P(malignant)), so everything that takes a head takes this one.
 *
 * @example
 * const { model, history } = await trainHead(train.features, trainLabels, {
 *   seed: 42, hiddenUnits: 128, epochs: 20, classWeights: "balanced",
 *   validation: { features: val.features, labels: valLabels },
 * });
 * console.log(history.at(-1)?.valAuc);
 */
export async function trainHead(
  features: Float32Array,
  labels: ArrayLike<number> | readonly LesionLabel[],
  options: TrainHeadOptions,
): Promise<TrainHeadResult> {
  const y = toBinaryLabels(labels);
  const n = y.length;
  if (n === 0) throw new TrainHeadError("labels: received 0 labels, expected at least one per feature row");
  if (features.length % n !== 0) {
    throw new TrainHeadError(`features: received ${features.length} values for ${n} labels; expected n × featureDim`);
  }
  const featureDim = features.length / n;
  const hiddenUnits = options.hiddenUnits ?? 128;
  const dropoutRate = options.dropoutRate ?? 0.3;
  const l2 = options.l2 ?? 1e-4;
  const epochs = options.epochs ?? 20;
  const batchSize = options.batchSize ?? 32;
  const learningRate = options.learningRate ?? 1e-3;
  const computeAuc = options.computeAuc ?? computeRocAucExact;
  const { seed } = options;
  if (!(dropoutRate >= 0 && dropoutRate < 1))
    throw new TrainHeadError(`dropoutRate: received ${dropoutRate}, expected 0 ≤ rate < 1`);
  if (!(Number.isInteger(epochs) && epochs >= 1))
    throw new TrainHeadError(`epochs: received ${epochs}, expected a positive integer`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1))
    throw new TrainHeadError(`batchSize: received ${batchSize}, expected a positive integer`);
  const sampling = options.sampling ?? "shuffle";
  if (sampling !== "shuffle" && sampling !== "balanced") {
    throw new TrainHeadError(`sampling: received ${JSON.stringify(sampling)}, expected "shuffle" or "balanced"`);
  }
  const positives = y.reduce((a, b) => a + b, 0);
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) {
    throw new TrainHeadError(`labels: need both classes, received ${positives} malignant and ${negatives} benign`);
  }
  const classWeights = resolveClassWeights(options.classWeights, negatives, positives);
  const rowWeights = options.rowWeights;
  if (rowWeights !== undefined) {
    if (rowWeights.length !== n)
      throw new TrainHeadError(`rowWeights: received ${rowWeights.length} weights, expected one per label (${n})`);
    for (let i = 0; i < n; i++)
      if (!(Number.isFinite(rowWeights[i]) && rowWeights[i] >= 0))
        throw new TrainHeadError(`rowWeights[${i}]: received ${rowWeights[i]}, expected a finite number ≥ 0`);
  }
  let targets: DiagnosisTargets | undefined;
  if (options.diagnoses !== undefined) {
    targets = encodeDiagnosisTargets(options.diagnoses, y, options.malignantDiagnoses ?? DEFAULT_MALIGNANT_DIAGNOSES);
  } else if (options.malignantDiagnoses !== undefined) {
    throw new TrainHeadError(
      "malignantDiagnoses: given without diagnoses; expected both (a diagnosis-target head) or neither",
    );
  }
  // Weight of each diagnosis class: balanced n / (K·n_k), else the weight of its label.
  const diagnosisWeights = targets
    ? resolveDiagnosisWeights(options.classWeights, targets.counts, targets.malignantMask, classWeights)
    : undefined;

  let valLabels: Int32Array | undefined;
  if (options.validation) {
    valLabels = toBinaryLabels(options.validation.labels, "validation.labels");
    if (options.validation.features.length !== valLabels.length * featureDim) {
      throw new TrainHeadError(
        `validation.features: received ${options.validation.features.length} values, expected ${valLabels.length} labels × featureDim ${featureDim}`,
      );
    }
  }

  const initialBias = computeOutputBiasFromCounts(negatives, positives);
  const input = tf.input({ shape: [featureDim], name: "head_input" });
  const hidden =
    hiddenUnits > 0
      ? tf.layers.dense({
          units: hiddenUnits,
          activation: "relu",
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
          name: "head_hidden",
        })
      : undefined;
  const output = targets
    ? tf.layers.dense({
        units: targets.classes.length,
        activation: "linear",
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
        name: DIAGNOSIS_HEAD_LAYERS.logits,
      })
    : tf.layers.dense({
        units: 1,
        activation: "sigmoid",
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
        biasInitializer: tf.initializers.constant({ value: initialBias }),
        name: "head_output",
      });
  let symbolic: tf.SymbolicTensor = input;
  if (hidden) {
    symbolic = hidden.apply(symbolic) as tf.SymbolicTensor;
    symbolic = tf.layers.dropout({ rate: dropoutRate, name: "head_dropout" }).apply(symbolic) as tf.SymbolicTensor;
  }
  symbolic = output.apply(symbolic) as tf.SymbolicTensor;
  let diagnosisLayers: HeadLayers["diagnosis"];
  if (targets) {
    const softmax = tf.layers.activation({ activation: "softmax", name: DIAGNOSIS_HEAD_LAYERS.softmax });
    const malignantSum = tf.layers.dense({
      units: 1,
      useBias: false,
      activation: "linear",
      trainable: false,
      kernelInitializer: "zeros",
      name: DIAGNOSIS_HEAD_LAYERS.malignantSum,
    });
    symbolic = malignantSum.apply(softmax.apply(symbolic)) as tf.SymbolicTensor;
    diagnosisLayers = { softmax, malignantSum };
  }
  const model = tf.model({ inputs: input, outputs: symbolic, name: "triage_head" });
  if (targets && diagnosisLayers) {
    const K = targets.classes.length;
    // Biases log(n_k / n): the untrained head predicts the class frequencies, so its P(malignant)
    // starts at the malignant rate, as the binary head's log(pos/neg) bias does.
    const priors = tf.tensor1d(targets.counts.map((c) => Math.log(c / n)));
    const mask = tf.tensor2d(targets.malignantMask, [K, 1]);
    // write() shares the tensors' data (reference-counted), so disposing them below is safe.
    output.weights[1].write(priors);
    diagnosisLayers.malignantSum.weights[0].write(mask);
    tf.dispose([priors, mask]);
  }
  const layers: HeadLayers = { hidden, output, dropoutRate, diagnosis: diagnosisLayers };
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const kernels = variables.filter((v) => /kernel/.test(v.name));

  const trainFeatures = tf.tensor2d(features, [n, featureDim]);
  const sampleWeightValues = targets
    ? Float32Array.from(targets.classIndex, (k, i) => diagnosisWeights![k] * (rowWeights?.[i] ?? 1))
    : Float32Array.from(y, (v, i) => classWeights[v] * (rowWeights?.[i] ?? 1));
  const valFeatures: tf.Tensor2D | undefined = options.validation
    ? tf.tensor2d(options.validation.features, [valLabels!.length, featureDim])
    : undefined;
  const optimizer = tf.train.adam(learningRate);
  const history: EpochMetrics[] = [];
  const best = new BestEpochWeights();
  const batchesPerEpoch = Math.ceil(n / batchSize);
  const fingerprint: CheckpointFingerprint = {
    rows: n,
    featureDim,
    positives,
    seed,
    hiddenUnits,
    dropoutRate,
    l2,
    batchSize,
    learningRate,
    classWeights,
    featureChecksum: computeValuesChecksum(features),
    // Only balanced runs record it, so checkpoints written before this option still resume.
    ...(sampling === "balanced" ? { sampling } : {}),
    // Only row-weighted runs record a checksum of their weights, for the same reason.
    ...(rowWeights !== undefined ? { rowWeightsChecksum: computeValuesChecksum(rowWeights) } : {}),
    // Likewise only diagnosis-target runs record their targets (a binary run refuses these keys).
    ...(targets
      ? {
          target: "diagnosis" as const,
          diagnosisClasses: targets.classes,
          malignantDiagnoses: targets.malignantDiagnoses,
          diagnosisWeights: diagnosisWeights!,
          diagnosesChecksum: computeValuesChecksum(targets.classIndex),
        }
      : {}),
  };
  let resumedFromEpoch = 0;
  try {
    if (options.checkpointDir && options.resume) {
      const restored = await readCheckpoint(
        options.checkpointDir,
        fingerprint,
        model,
        optimizer,
        options.restoreBestWeights === true,
      );
      if (restored) {
        resumedFromEpoch = restored.epoch;
        history.push(...(restored.history as EpochMetrics[]));
        best.adopt(restored.best);
      }
    }
    const callbacks = options.callbacks ?? [];
    for (const cb of callbacks) cb.setModel?.(model);
    for (const cb of callbacks) await cb.onTrainBegin?.({});
    for (let epoch = resumedFromEpoch + 1; epoch <= epochs; epoch++) {
      const started = performance.now();
      for (const cb of callbacks) await cb.onEpochBegin?.(epoch - 1, {});
      let epochBatches: number[][];
      if (sampling === "balanced") {
        epochBatches = createBalancedBatchOrder(y, { batchSize, seed, epoch });
      } else {
        const order = shuffleWithSeed(
          Array.from({ length: n }, (_, i) => i),
          seed * 7919 + epoch,
        );
        epochBatches = [];
        for (let start = 0; start < n; start += batchSize) epochBatches.push(order.slice(start, start + batchSize));
      }
      let lossSum = 0;
      let batches = 0;
      for (let batchIndex = 0; batchIndex < epochBatches.length; batchIndex++) {
        const batchIndices = epochBatches[batchIndex];
        // Seed from (epoch, batch), not a running counter, so a resumed run draws the same masks.
        const dropoutSeed = seed * 1_000_003 + (epoch - 1) * batchesPerEpoch + batchIndex;
        const cost = tf.tidy(() => {
          // Rows are copied in JS: wasm's GatherV2 took a quarter of a small head's training time.
          const xb = tf.tensor2d(copyRows(features, featureDim, batchIndices), [batchIndices.length, featureDim]);
          const yb = tf.tensor1d(Float32Array.from(batchIndices, (i) => y[i]));
          const wb = tf.tensor1d(Float32Array.from(batchIndices, (i) => sampleWeightValues[i]));
          const ob = targets
            ? (tf
                .oneHot(
                  tf.tensor1d(
                    batchIndices.map((i) => targets!.classIndex[i]),
                    "int32",
                  ),
                  targets.classes.length,
                )
                .toFloat() as tf.Tensor2D)
            : undefined;
          return optimizer.minimize(
            () => {
              let perExample: tf.Tensor1D;
              if (ob) {
                perExample = categoricalCrossEntropyFromLogits(ob, outputOf(layers, xb, true, dropoutSeed));
              } else {
                perExample = binaryCrossEntropy(yb, probabilities(layers, xb, true, dropoutSeed));
              }
              const dataLoss = tf.mean(tf.mul(perExample, wb));
              if (l2 === 0) return dataLoss as tf.Scalar;
              const penalty = tf.addN(kernels.map((k) => sumOfSquares(k)));
              return tf.add(dataLoss, tf.mul(l2, penalty)) as tf.Scalar;
            },
            true,
            variables,
          )!;
        });
        lossSum += cost.dataSync()[0];
        cost.dispose();
        batches++;
      }
      const train = evaluate(layers, trainFeatures, y, computeAuc);
      const metrics: EpochMetrics = {
        epoch,
        trainLoss: lossSum / batches,
        trainAccuracy: train.accuracy,
        trainAuc: train.auc,
        elapsedMs: 0,
      };
      if (valFeatures && valLabels) {
        const val = evaluate(layers, valFeatures, valLabels, computeAuc);
        metrics.valLoss = val.loss;
        metrics.valAccuracy = val.accuracy;
        metrics.valAuc = val.auc;
        if (options.restoreBestWeights) best.offer(model, epoch, val.auc);
      }
      metrics.elapsedMs = performance.now() - started;
      history.push(metrics);
      if (options.checkpointDir)
        await writeCheckpoint(options.checkpointDir, epoch, fingerprint, model, optimizer, history);
      const logs = toKerasLogs(metrics, learningRate);
      for (const cb of callbacks) await cb.onEpochEnd?.(epoch - 1, logs);
      await options.onEpochEnd?.(metrics);
    }
    for (const cb of callbacks) await cb.onTrainEnd?.({});
    const keptEpoch = best.restoreInto(model, epochs);
    const result: TrainHeadResult = { model, history, keptEpoch, featureDim, initialBias, resumedFromEpoch };
    if (targets) {
      result.diagnosisClasses = targets.classes;
      result.malignantClasses = targets.classes.filter((_, k) => targets!.malignantMask[k] === 1);
    }
    return result;
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    best.dispose();
    optimizer.dispose();
    trainFeatures.dispose();
    valFeatures?.dispose();
  }
}
