import type * as tf from "@tensorflow/tfjs";

/**
 * Metrics after one epoch. Losses are binary cross-entropy (natural log, mean per image), except
 * trainLoss of a diagnosis-target head (categorical cross-entropy over the diagnoses).
 */
export interface EpochMetrics {
  /** 1-based epoch number. */
  epoch: number;
  /**
   * Mean training objective over the epoch's batches (class-weighted BCE + L2, dropout on; with
   * a diagnosis-target head, class-weighted categorical cross-entropy over the diagnoses (+ L2 in trainHead)).
   */
  trainLoss: number;
  /** Accuracy at probability 0.5 on the whole training set after the epoch (dropout off). */
  trainAccuracy: number;
  trainAuc: number;
  /** Unweighted BCE of P(malignant) on the validation set (absent without validation data). */
  valLoss?: number;
  valAccuracy?: number;
  valAuc?: number;
  elapsedMs: number;
}

/**
 * A training callback: any object with some of tfjs's `tf.Callback` methods, e.g. the
 * TensorBoard callback of lib/logging. Epoch indices passed to it are 0-based, as in
 * `model.fit`; logs use Keras names: loss, accuracy, auc, learning_rate, val_loss,
 * val_accuracy, val_auc.
 */
export interface TrainingCallback {
  setModel?(model: tf.LayersModel): void;
  onTrainBegin?(logs?: Record<string, number>): unknown;
  onEpochBegin?(epoch: number, logs?: Record<string, number>): unknown;
  onEpochEnd?(epoch: number, logs?: Record<string, number>): unknown;
  onTrainEnd?(logs?: Record<string, number>): unknown;
}

/**
 * Epoch metrics under Keras's log names (loss, accuracy, auc, learning_rate, val_*), as
 * tf.Callback-style callbacks (e.g. the TensorBoard one) expect them.
 *
 * @example toKerasLogs(metrics, 1e-3) // { loss: 0.41, accuracy: 0.83, auc: 0.9, learning_rate: 0.001, val_auc: 0.85, … }
 */
export function toKerasLogs(m: EpochMetrics, learningRate: number): Record<string, number> {
  const logs: Record<string, number> = {
    loss: m.trainLoss,
    accuracy: m.trainAccuracy,
    auc: m.trainAuc,
    learning_rate: learningRate,
  };
  if (m.valLoss !== undefined) logs.val_loss = m.valLoss;
  if (m.valAccuracy !== undefined) logs.val_accuracy = m.valAccuracy;
  if (m.valAuc !== undefined) logs.val_auc = m.valAuc;
  return logs;
}

/**
 * One line per epoch for notebooks and logs.
 *
 * @example formatEpochMetrics(history[0]) // "epoch 1: loss 0.6523 acc 0.612 auc 0.701 | val loss 0.6400 acc 0.640 auc 0.733 (0.4 s)"
 */
export function formatEpochMetrics(m: EpochMetrics): string {
  const train = `epoch ${m.epoch}: loss ${m.trainLoss.toFixed(4)} acc ${m.trainAccuracy.toFixed(3)} auc ${m.trainAuc.toFixed(3)}`;
  const val =
    m.valLoss === undefined
      ? ""
      : ` | val loss ${m.valLoss.toFixed(4)} acc ${m.valAccuracy!.toFixed(3)} auc ${m.valAuc!.toFixed(3)}`;
  return `${train}${val} (${(m.elapsedMs / 1000).toFixed(1)} s)`;
}
