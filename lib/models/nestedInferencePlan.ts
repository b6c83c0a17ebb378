import * as tf from "@tensorflow/tfjs";
import { compileInferencePlan, InferencePlanError, type InferencePlan, type InferencePlanSummary } from "./inferencePlan.js";

/** What {@link compileNestedInferencePlan} compiled, for reports and tests. */
export interface NestedInferencePlanSummary {
  /** Layer calls of the outer graph per forward pass (input layers not counted). */
  steps: number;
  /** Outer-graph steps that are whole models (e.g. the backbones of an ensemble). */
  nestedModels: number;
  /** Summary of each nested model compiled into an {@link InferencePlan}, in graph order. */
  compiled: InferencePlanSummary[];
}

/** A multi-input model compiled for inference; see {@link compileNestedInferencePlan}. */
export interface NestedInferencePlan {
  /** Same output as `model.predict(inputs)`, one tensor per model input in order; the caller disposes it. */
  predict(inputs: readonly tf.Tensor[]): tf.Tensor;
  summary: NestedInferencePlanSummary;
  /** Frees the nested plans' folded weights (the model is untouched). */
  dispose(): void;
}

type Step = { outputId: number; inputIds: number[]; run: (inputs: tf.Tensor[]) => tf.Tensor };

/**
 * Compiles a model with any number of inputs whose heavy parts are nested models, such as an
 * ensemble triage model (an image input per backbone → each backbone model → concatenate →
 * head): each nested single-input model becomes a {@link compileInferencePlan} (BatchNorm folded,
 * activations fused), every other layer of the outer graph runs its own `apply`. The outer graph
 * is followed from the output back through each symbolic tensor's producing layer, so only what
 * the output needs runs. A nested model the plan compiler cannot follow runs its own `apply`.
 * Throws {@link InferencePlanError} for a model with several outputs or an input layer that is
 * not one of the model's inputs.
 *
 * @example
 * const plan = compileNestedInferencePlan(ensembleTriage);
 * const probs = plan.predict([x224, x299]); // [n, 1]
 * plan.dispose();
 */
export function compileNestedInferencePlan(model: tf.LayersModel): NestedInferencePlan {
  if (model.outputs.length !== 1) throw new InferencePlanError(`model ${model.name}: ${model.outputs.length} outputs, expected one`);
  const inputIndex = new Map(model.inputs.map((t, i) => [t.id, i]));
  const steps: Step[] = [];
  const plans: InferencePlan[] = [];
  const visited = new Set<number>();
  let nestedModels = 0;
  const visit = (t: tf.SymbolicTensor): void => {
    if (visited.has(t.id) || inputIndex.has(t.id)) return;
    visited.add(t.id);
    const layer = t.sourceLayer;
    if (layer.getClassName() === "InputLayer") {
      throw new InferencePlanError(`model ${model.name}: input layer ${layer.name} feeds the output but is not one of the model's inputs`);
    }
    t.inputs.forEach(visit);
    const apply = (xs: tf.Tensor[]): tf.Tensor => {
      const out = layer.apply(xs.length === 1 ? xs[0] : xs, { training: false }) as tf.Tensor | tf.Tensor[];
      return Array.isArray(out) ? out[t.outputTensorIndex ?? 0] : out;
    };
    let run = apply;
    if (layer instanceof tf.LayersModel) {
      nestedModels++;
      try {
        const plan = compileInferencePlan(layer);
        plans.push(plan);
        run = ([x]) => plan.predict(x);
      } catch (err) {
        if (!(err instanceof InferencePlanError)) {
          for (const p of plans) p.dispose();
          throw err;
        }
      }
    }
    steps.push({ outputId: t.id, inputIds: t.inputs.map((i) => i.id), run });
  };
  visit(model.outputs[0]);
  const outputId = model.outputs[0].id;
  let disposed = false;
  return {
    summary: { steps: steps.length, nestedModels, compiled: plans.map((p) => p.summary) },
    predict(inputs: readonly tf.Tensor[]): tf.Tensor {
      if (disposed) throw new InferencePlanError(`nested inference plan of ${model.name} was disposed`);
      if (inputs.length !== model.inputs.length) {
        throw new InferencePlanError(`model ${model.name}: received ${inputs.length} input tensors, expected ${model.inputs.length} (one per model input)`);
      }
      return tf.tidy(() => {
        const values = new Map<number, tf.Tensor>();
        model.inputs.forEach((t, i) => values.set(t.id, inputs[i]));
        for (const step of steps) values.set(step.outputId, step.run(step.inputIds.map((id) => values.get(id)!)));
        return values.get(outputId)!;
      });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const p of plans) p.dispose();
    },
  };
}
