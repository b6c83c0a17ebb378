import * as tf from "@tensorflow/tfjs";
import { TrainHeadError } from "./binaryLabels.js";

/**
 * Runs `run` over the rows of a row-major Float32Array in tidied chunks of `batchSize` rows and
 * collects its outputs: rows of shape `rowShape` in, `outputWidth` floats per row out. The one
 * batched-prediction loop of lib/train (heads on features, fine-tuned tops on activations, the
 * diagnosis softmax).
 *
 * @example predictRowsInBatches(features, [1280], 512, 1, (x) => head.predict(x) as tf.Tensor) // Float32Array(rows)
 */
export function predictRowsInBatches(
  values: Float32Array,
  rowShape: readonly number[],
  batchSize: number,
  outputWidth: number,
  run: (batch: tf.Tensor) => tf.Tensor,
): Float32Array {
  const rowSize = rowShape.reduce((a, b) => a * b, 1);
  const rows = values.length / rowSize;
  const out = new Float32Array(rows * outputWidth);
  for (let start = 0; start < rows; start += batchSize) {
    const end = Math.min(rows, start + batchSize);
    const chunk = tf.tidy(() =>
      run(tf.tensor(values.subarray(start * rowSize, end * rowSize), [end - start, ...rowShape])).dataSync(),
    );
    out.set(chunk, start * outputWidth);
  }
  return out;
}

/**
 * Probability of malignant for each row of a row-major feature matrix, from a head (or any
 * model taking [n, featureDim] → [n, 1]), in tidied chunks of `batchSize` rows.
 *
 * @example const probs = predictHeadProbabilities(head, validation.features, 1280); // Float32Array(n)
 */
export function predictHeadProbabilities(
  head: tf.LayersModel,
  features: Float32Array,
  featureDim: number,
  batchSize = 512,
): Float32Array {
  if (!(Number.isInteger(featureDim) && featureDim > 0) || features.length % featureDim !== 0) {
    throw new TrainHeadError(
      `features: received ${features.length} values, expected a multiple of featureDim ${featureDim}`,
    );
  }
  return predictRowsInBatches(features, [featureDim], batchSize, 1, (x) => head.predict(x) as tf.Tensor);
}
