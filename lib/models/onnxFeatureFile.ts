import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { onnx as OnnxNamespace } from "onnx-proto";
import { findProjectRoot } from "../util/paths.js";
import { decodeOnnxModel, OnnxImportError, onnxProtoModule } from "./onnxImport.js";
import type { BackboneOnnxFile } from "./types.js";

// An ONNX classifier cut at its last global pooling, as a file ONNX Runtime runs for features:
// ONNX Runtime only returns graph outputs, and the zoo's classifiers output class scores.

/** The last global pooling of an ONNX graph: the node, and the value it pools. */
export interface OnnxGlobalPooling {
  /** The pooling node: GlobalAveragePool, com.microsoft QLinearGlobalAveragePool, or ReduceMean over the spatial axes. */
  node: OnnxNamespace.INodeProto;
  /** The pooled 4-D activation (the node's first input), e.g. "627_quantized". */
  pooledValueName: string;
  /** The pooled output, e.g. "resnetv24_pool1_fwd". */
  outputName: string;
}

const SPATIAL_AXES = ["1,2", "2,3", "-3,-2", "-2,-1"];

function isGlobalPooling(node: OnnxNamespace.INodeProto): boolean {
  const op = node.opType ?? "";
  if (op === "GlobalAveragePool" && (!node.domain || node.domain === "ai.onnx")) return true;
  if (op === "QLinearGlobalAveragePool" && node.domain === "com.microsoft") return true;
  if (op !== "ReduceMean") return false;
  const axes = (node.attribute ?? []).find((a) => a.name === "axes");
  return axes !== undefined && SPATIAL_AXES.includes((axes.ints ?? []).map(Number).sort().join());
}

/**
 * The graph's last global pooling (in node order): GlobalAveragePool, QLinearGlobalAveragePool
 * (int8 files) or ReduceMean over two spatial axes (TensorFlow-converted files), else undefined.
 *
 * @example findLastGlobalPooling(proto.graph!)?.outputName // "resnetv24_pool1_fwd"
 */
export function findLastGlobalPooling(graph: OnnxNamespace.IGraphProto): OnnxGlobalPooling | undefined {
  const node = (graph.node ?? []).filter(isGlobalPooling).at(-1);
  if (!node) return undefined;
  return { node, pooledValueName: (node.input ?? [])[0], outputName: (node.output ?? [])[0] };
}

/** The nodes `outputs` depend on, in graph order, and the initializer names they read. */
function nodesNeededFor(graph: OnnxNamespace.IGraphProto, outputs: string[]): { nodes: OnnxNamespace.INodeProto[]; reads: Set<string> } {
  const producer = new Map<string, OnnxNamespace.INodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  const needed = new Set<OnnxNamespace.INodeProto>();
  const reads = new Set<string>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const name = stack.pop()!;
    reads.add(name);
    const n = producer.get(name);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    for (const i of n.input ?? []) if (i) stack.push(i);
  }
  return { nodes: (graph.node ?? []).filter((n) => needed.has(n)), reads };
}

/**
 * Writes (once) `<cacheDir>/<file name>-features-<sha256 prefix of the source>.onnx`: the source
 * graph cut at its last global pooling, whose only output `features` is the pooled value
 * flattened to [N, channels] (a QLinearGlobalAveragePool's int8 output dequantized with its own
 * scale and zero point first). Nodes after the pooling are dropped and the input's batch dim is
 * made symbolic, so any batch size runs. Returns the description for {@link Backbone.onnx}
 * (layout: the source input's, `inputLayout`). Throws {@link OnnxImportError} when the graph has
 * no global pooling. `cacheDir` defaults to <root>/.cache/onnx (as converted tfjs backbones).
 *
 * @example writeOnnxFeaturesFile("/w/mobilenetv2-12-int8.onnx", bytes, "NCHW") // { path: ".../mobilenetv2-12-int8-features-83530ad811bc31d2.onnx", outputName: "features", … }
 */
export function writeOnnxFeaturesFile(
  sourcePath: string,
  sourceBytes: Uint8Array,
  inputLayout: "NCHW" | "NHWC",
  cacheDir: string = path.join(findProjectRoot(), ".cache", "onnx"),
): BackboneOnnxFile & { pooling: OnnxGlobalPooling } {
  const onnx = onnxProtoModule();
  const proto = decodeOnnxModel(sourceBytes);
  const graph = proto.graph;
  if (!graph) throw new OnnxImportError(`${sourcePath}: ONNX model has no graph`);
  const pooling = findLastGlobalPooling(graph);
  if (!pooling) {
    throw new OnnxImportError(
      `${sourcePath}: no global pooling node (GlobalAveragePool, QLinearGlobalAveragePool or ReduceMean over the spatial axes); expected an image classifier to cut before its classifier`,
    );
  }
  const extra: OnnxNamespace.INodeProto[] = [];
  let pooled = pooling.outputName;
  if (pooling.node.opType === "QLinearGlobalAveragePool") {
    // Inputs x, x_scale, x_zero_point, y_scale, y_zero_point: y's own quantisation parameters.
    const [, , , yScale, yZeroPoint] = pooling.node.input ?? [];
    extra.push(onnx.NodeProto.create({ name: "features_dequantize", opType: "DequantizeLinear", input: [pooled, yScale, yZeroPoint], output: ["features_pooled"] }));
    pooled = "features_pooled";
  }
  extra.push(onnx.NodeProto.create({ name: "features_flatten", opType: "Flatten", input: [pooled], output: ["features"], attribute: [onnx.AttributeProto.create({ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 1 })] }));
  const { nodes, reads } = nodesNeededFor(graph, [pooling.outputName, ...extra.flatMap((n) => n.input ?? [])]);
  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name ?? ""));
  const inputs = (graph.input ?? []).filter((i) => !initializerNames.has(i.name ?? "") || reads.has(i.name ?? ""));
  const imageInputs = inputs.filter((i) => !initializerNames.has(i.name ?? ""));
  if (imageInputs.length !== 1) throw new OnnxImportError(`${sourcePath}: ${imageInputs.length} non-constant inputs; expected exactly one image input`);
  const image = onnx.ValueInfoProto.fromObject(onnx.ValueInfoProto.toObject(onnx.ValueInfoProto.create(imageInputs[0])));
  const batchDim = image.type?.tensorType?.shape?.dim?.[0];
  if (batchDim) {
    delete (batchDim as { dimValue?: unknown }).dimValue;
    batchDim.dimParam = "N";
  }
  const derived = onnx.ModelProto.create({
    ...proto,
    graph: onnx.GraphProto.create({
      name: `${graph.name ?? "graph"}_features`,
      node: [...nodes, ...extra],
      initializer: (graph.initializer ?? []).filter((t) => reads.has(t.name ?? "")),
      input: inputs.map((i) => (i === imageInputs[0] ? image : i)),
      output: [onnx.ValueInfoProto.create({ name: "features", type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } })],
    }),
  });
  const bytes = onnx.ModelProto.encode(derived).finish();
  const sourceHash = crypto.createHash("sha256").update(sourceBytes).digest("hex");
  const file = path.join(path.resolve(cacheDir), `${path.basename(sourcePath, ".onnx")}-features-${sourceHash.slice(0, 16)}.onnx`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  }
  const sha256 = crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
  return { path: file, sha256, inputName: imageInputs[0].name ?? "", outputName: "features", layout: inputLayout, pooling };
}
