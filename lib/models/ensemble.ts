import crypto from "node:crypto";
import type { InputProblem, LesionRecord } from "../data/types.js";
import { MelanomaLabError } from "../util/errors.js";
import { loadBackbone, parseBackboneName, type BackboneName, type LoadBackboneOptions } from "./backbones.js";
import { extractFeatures, type ExtractFeaturesOptions, type FeatureMatrix } from "./features.js";
import { disposeBackbone } from "./inferencePlan.js";
import { MOBILENET_V1_ALPHAS } from "./mobilenetV1.js";
import type { Backbone } from "./types.js";

/** Thrown for an ensemble spec or member list that cannot be used (empty part, duplicate, bad alpha). */
export class BackboneEnsembleError extends MelanomaLabError {}

/** Separator of members in an ensemble spec: "mobilenet_v2+inception_v3". */
const ENSEMBLE_MEMBER_SEPARATOR = "+";

/** One member of an ensemble spec: a registry name and, for mobilenet_v1 only, its width multiplier. */
export interface BackboneMemberSpec {
  name: BackboneName;
  /** mobilenet_v1 only: 0.25, 0.5, 0.75 or 1.0 (omitted = loadBackbone's default, 1.0). */
  alpha?: number;
}

/**
 * Several backbones whose pooled features are used side by side (a "feature ensemble"):
 * one row of features is member 0's features, then member 1's, … (featureDim = the sum).
 */
export interface BackboneEnsemble {
  /** Canonical spec, e.g. "mobilenet_v2+inception_v3+mobilenet_v1@1.0" (member order = feature order). */
  name: string;
  /** Canonical spec of each member, e.g. ["mobilenet_v2", "mobilenet_v1@1.0"]. */
  memberNames: string[];
  members: Backbone[];
  /** Sum of the members' featureDim. */
  featureDim: number;
  /** Stable id of the members' weights, layers and sizes, in order ("ensemble/sha256:…"). */
  weightsId: string;
}

/** Options of {@link loadBackboneEnsemble}: loadBackbone's, less the per-member ones the spec gives. */
export type LoadBackboneEnsembleOptions = Omit<LoadBackboneOptions, "alpha" | "featureLayerName">;

/**
 * The width multiplier as the spec writes it: 1 → "1.0", 0.5 → "0.5", 0.25 → "0.25".
 */
function formatAlpha(alpha: number): string {
  return Number.isInteger(alpha) ? alpha.toFixed(1) : String(alpha);
}

/**
 * Canonical text of one member or a list of members: lower-case names in the given order,
 * `@alpha` for mobilenet_v1 (always written, so "mobilenet_v1" and "mobilenet_v1@1.0" name the
 * same model the same way).
 *
 * @example formatBackboneEnsemble([{ name: "mobilenet_v2" }, { name: "mobilenet_v1", alpha: 1 }]) // "mobilenet_v2+mobilenet_v1@1.0"
 */
export function formatBackboneEnsemble(specs: readonly BackboneMemberSpec[]): string {
  return specs.map((s) => (s.name === "mobilenet_v1" ? `${s.name}@${formatAlpha(s.alpha ?? 1)}` : s.name)).join(ENSEMBLE_MEMBER_SEPARATOR);
}

/**
 * True when a `--backbone` value names an ensemble (two or more members joined by "+"), so a
 * caller can keep the single-backbone path for plain names.
 *
 * @example isBackboneEnsembleSpec("mobilenet_v2+inception_v3") // true
 */
export function isBackboneEnsembleSpec(spec: string): boolean {
  return spec.includes(ENSEMBLE_MEMBER_SEPARATOR);
}

/**
 * Parses "name[@alpha]+name[@alpha]+…" (case-insensitive, spaces around parts ignored) into
 * member specs in order. Each name goes through {@link parseBackboneName} (an unknown name
 * throws UnknownNameError with the valid names and the nearest); `@alpha` is accepted only for
 * mobilenet_v1 and must be one of MOBILENET_V1_ALPHAS. A backbone may appear once: two members
 * of the same architecture share layer and weight names, so they cannot live in one exported
 * model. Other mistakes throw {@link BackboneEnsembleError} naming the part.
 *
 * @example
 * parseBackboneEnsemble("mobilenet_v2+inception_v3+mobilenet_v1@1.0")
 * // [{ name: "mobilenet_v2" }, { name: "inception_v3" }, { name: "mobilenet_v1", alpha: 1 }]
 */
export function parseBackboneEnsemble(spec: string): BackboneMemberSpec[] {
  const parts = spec.split(ENSEMBLE_MEMBER_SEPARATOR).map((p) => p.trim());
  const members: BackboneMemberSpec[] = [];
  parts.forEach((part, index) => {
    if (part === "") {
      throw new BackboneEnsembleError(`backbone ensemble ${JSON.stringify(spec)}: part ${index + 1} is empty, expected "name" or "mobilenet_v1@alpha" between the "+" signs`);
    }
    const at = part.indexOf("@");
    const name = parseBackboneName(at < 0 ? part : part.slice(0, at));
    const member: BackboneMemberSpec = { name };
    if (at >= 0) {
      const alphaText = part.slice(at + 1).trim();
      if (name !== "mobilenet_v1") {
        throw new BackboneEnsembleError(`backbone ensemble ${JSON.stringify(spec)}: part ${JSON.stringify(part)} gives @${alphaText}, but only mobilenet_v1 takes a width multiplier`);
      }
      const alpha = alphaText === "" ? NaN : Number(alphaText);
      if (!(MOBILENET_V1_ALPHAS as readonly number[]).includes(alpha)) {
        throw new BackboneEnsembleError(
          `backbone ensemble ${JSON.stringify(spec)}: part ${JSON.stringify(part)} has alpha ${JSON.stringify(alphaText)}, expected one of ${MOBILENET_V1_ALPHAS.map(formatAlpha).join(", ")}`,
        );
      }
      member.alpha = alpha;
    }
    const earlier = members.findIndex((m) => m.name === name);
    if (earlier >= 0) {
      throw new BackboneEnsembleError(
        `backbone ensemble ${JSON.stringify(spec)}: ${name} appears twice (parts ${earlier + 1} and ${index + 1}), expected each backbone once (two copies would share layer and weight names in the exported model)`,
      );
    }
    members.push(member);
  });
  return members;
}

/**
 * A {@link BackboneEnsemble} from backbones already loaded (registry ones or your own): checks
 * that names are distinct and computes featureDim, weightsId and the canonical name. `memberNames`
 * defaults to each backbone's name.
 *
 * @example const ensemble = createBackboneEnsemble([v2, inception]); // ensemble.featureDim === 1280 + 2048
 */
export function createBackboneEnsemble(members: readonly Backbone[], memberNames: readonly string[] = members.map((m) => m.name)): BackboneEnsemble {
  if (members.length === 0) throw new BackboneEnsembleError("members: received none, expected at least one backbone");
  if (memberNames.length !== members.length) {
    throw new BackboneEnsembleError(`memberNames: received ${memberNames.length} names for ${members.length} members`);
  }
  const seen = new Map<string, number>();
  members.forEach((m, i) => {
    const earlier = seen.get(m.name);
    if (earlier !== undefined) {
      throw new BackboneEnsembleError(`members[${i}]: backbone ${JSON.stringify(m.name)} is also members[${earlier}], expected each backbone once`);
    }
    seen.set(m.name, i);
  });
  const key = JSON.stringify(members.map((m) => [m.name, m.weightsId, m.featureLayerName, m.featureDim, m.inputSizePx, m.preprocessing]));
  return {
    name: memberNames.join(ENSEMBLE_MEMBER_SEPARATOR),
    memberNames: [...memberNames],
    members: [...members],
    featureDim: members.reduce((sum, m) => sum + m.featureDim, 0),
    weightsId: `ensemble/sha256:${crypto.createHash("sha256").update(key).digest("hex").slice(0, 16)}`,
  };
}

/**
 * Loads every member of an ensemble spec (see {@link parseBackboneEnsemble}) with
 * {@link loadBackbone} and the shared options (weights folders, base URL, …); alpha comes from
 * the spec. If a member fails to load, the ones already loaded are disposed and the error is
 * rethrown. Dispose with {@link disposeBackboneEnsemble}. Call `await selectBackend()` first.
 *
 * @example
 * const ensemble = await loadBackboneEnsemble("mobilenet_v2+inception_v3+mobilenet_v1@1.0");
 * ensemble.featureDim // 1280 + 2048 + 1024 = 4352
 */
export async function loadBackboneEnsemble(spec: string | readonly BackboneMemberSpec[], options: LoadBackboneEnsembleOptions = {}): Promise<BackboneEnsemble> {
  const specs = typeof spec === "string" ? parseBackboneEnsemble(spec) : parseBackboneEnsemble(formatBackboneEnsemble(spec));
  const members: Backbone[] = [];
  try {
    for (const s of specs) members.push(await loadBackbone(s.name, { ...options, alpha: s.alpha }));
  } catch (err) {
    for (const m of members) disposeBackbone(m);
    throw err;
  }
  return createBackboneEnsemble(
    members,
    specs.map((s) => formatBackboneEnsemble([s])),
  );
}

/**
 * Disposes every member backbone (compiled inference plans and weights). A triage model built
 * with buildEnsembleTriageModel shares these weights: dispose one or the other, not both.
 *
 * @example disposeBackboneEnsemble(ensemble);
 */
export function disposeBackboneEnsemble(ensemble: BackboneEnsemble): void {
  for (const m of ensemble.members) disposeBackbone(m);
}

/** One part of {@link concatenateFeatureRows}: rows of features, each with a key. */
export interface FeatureRowsPart<K> {
  /** Key of each row (e.g. imageId or input index); rows = keys.length. */
  keys: readonly K[];
  /** Row-major [keys.length, featureDim]. */
  features: Float32Array;
  featureDim: number;
}

/**
 * Joins several feature tables side by side by row key: the keys of `order` that every part
 * has (in `order`'s order) get one row of featureDim₁ + featureDim₂ + … values, part 0's
 * first. A key listed twice in one part uses that part's last row with it.
 *
 * @example
 * concatenateFeatureRows([{ keys: ["a", "b"], features: f1, featureDim: 2 }, { keys: ["b"], features: f2, featureDim: 3 }], ["a", "b"])
 * // { keys: ["b"], featureDim: 5, features: [f1 row 1, f2 row 0] }
 */
export function concatenateFeatureRows<K>(parts: readonly FeatureRowsPart<K>[], order: readonly K[]): { keys: K[]; features: Float32Array; featureDim: number } {
  parts.forEach((p, i) => {
    if (p.features.length !== p.keys.length * p.featureDim) {
      throw new BackboneEnsembleError(`parts[${i}].features: received ${p.features.length} values, expected ${p.keys.length} rows × ${p.featureDim} = ${p.keys.length * p.featureDim}`);
    }
  });
  const rowOf = parts.map((p) => new Map(p.keys.map((k, i) => [k, i])));
  const keys = order.filter((k) => rowOf.every((m) => m.has(k)));
  const featureDim = parts.reduce((sum, p) => sum + p.featureDim, 0);
  const features = new Float32Array(keys.length * featureDim);
  keys.forEach((k, row) => {
    let offset = row * featureDim;
    parts.forEach((p, i) => {
      const src = rowOf[i].get(k)!;
      features.set(p.features.subarray(src * p.featureDim, (src + 1) * p.featureDim), offset);
      offset += p.featureDim;
    });
  });
  return { keys, features, featureDim };
}

/** What {@link extractEnsembleFeatures} returns: a FeatureMatrix of the joined rows, plus per-member counts. */
export interface EnsembleFeatureMatrix extends FeatureMatrix {
  /** Per member, in feature order: its slice of each row and how its features were obtained. */
  memberStats: Array<{
    name: string;
    featureDim: number;
    /** First column of this member's features in a row. */
    featureOffset: number;
    cacheHits: number;
    computed: number;
    elapsedMs: number;
    cacheFolder?: string;
  }>;
}

/**
 * Features of an ensemble: {@link extractFeatures} per member (each with its own cache folder
 * under `cacheDir`, so features already cached for a single backbone are reused), then the rows
 * every member could read, in input order, with the members' features side by side (member 0's
 * first). An image a member could not read is dropped from every member and reported once, its
 * reason naming each member that failed ("inception_v3: …"). `onProgress` counts
 * images × members, after each batch, with the running member's name as `detail`.
 *
 * @example
 * const m = await extractEnsembleFeatures(ensemble, dataset.records, { cacheDir: resolveFeatureCacheDir() });
 * m.featureDim // 4352; m.sourceIndices line rows up with dataset.records
 */
export async function extractEnsembleFeatures(
  ensemble: BackboneEnsemble,
  input: readonly LesionRecord[] | readonly string[],
  options: ExtractFeaturesOptions = {},
): Promise<EnsembleFeatureMatrix> {
  const started = performance.now();
  const total = input.length * ensemble.members.length;
  const perMember: FeatureMatrix[] = [];
  for (const [k, member] of ensemble.members.entries()) {
    perMember.push(
      await extractFeatures(member, input, {
        ...options,
        // Per batch of each member, named, so a slow member (inception_v3) visibly advances.
        onProgress: options.onProgress ? (done) => options.onProgress!(k * input.length + done, total, ensemble.memberNames[k]) : undefined,
      }),
    );
  }
  // Rows are matched by input index, which is the record itself (ids may repeat across folders).
  const joined = concatenateFeatureRows(
    perMember.map((m) => ({ keys: m.sourceIndices, features: m.features, featureDim: m.featureDim })),
    input.map((_, i) => i),
  );
  // Every joined row was read by every member, so the first member's ids cover them all.
  const idOf = new Map(perMember[0].sourceIndices.map((source, row) => [source, perMember[0].imageIds[row]]));
  const problems = new Map<string, InputProblem>();
  perMember.forEach((m, k) => {
    for (const p of m.problems) {
      const reason = `${ensemble.memberNames[k]}: ${p.reason}`;
      const earlier = problems.get(p.file);
      problems.set(p.file, earlier ? { ...earlier, reason: `${earlier.reason}; ${reason}` } : { ...p, reason });
    }
  });
  let featureOffset = 0;
  const memberStats = perMember.map((m, k) => {
    const stats = {
      name: ensemble.memberNames[k],
      featureDim: m.featureDim,
      featureOffset,
      cacheHits: m.cacheHits,
      computed: m.computed,
      elapsedMs: m.elapsedMs,
      cacheFolder: m.cacheFolder,
    };
    featureOffset += m.featureDim;
    return stats;
  });
  return {
    features: joined.features,
    featureDim: joined.featureDim,
    rows: joined.keys.length,
    imageIds: joined.keys.map((i) => idOf.get(i)!),
    sourceIndices: joined.keys,
    problems: [...problems.values()],
    cacheHits: perMember.reduce((s, m) => s + m.cacheHits, 0),
    computed: perMember.reduce((s, m) => s + m.computed, 0),
    elapsedMs: performance.now() - started,
    memberStats,
  };
}
