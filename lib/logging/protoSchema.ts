import protobuf from "protobufjs";

/**
 * The subset of TensorFlow's and TensorBoard's public .proto files that event files use, with
 * the field numbers of the published schemas (tensorflow/core/util/event.proto,
 * tensorflow/core/framework/{summary,tensor,tensor_shape,types,graph,node_def}.proto,
 * google/protobuf/struct.proto and tensorboard/plugins/{hparams,pr_curve,text,...}/*.proto).
 * Only the fields this project reads or writes are declared; unknown fields are skipped on
 * decode, as every protobuf reader does.
 */
const TENSORBOARD_PROTO_SOURCE = `
syntax = "proto3";
package tb;

message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
    LogMessage log_message = 6;
    SessionLog session_log = 7;
    TaggedRunMetadata tagged_run_metadata = 8;
    bytes meta_graph_def = 9;
  }
  SourceMetadata source_metadata = 10;
}

message SourceMetadata { string writer = 1; }

message LogMessage {
  enum Level { UNKNOWN = 0; DEBUGGING = 10; INFO = 20; WARN = 30; ERROR = 40; FATAL = 50; }
  Level level = 1;
  string message = 2;
}

message SessionLog {
  enum SessionStatus { STATUS_UNSPECIFIED = 0; START = 1; STOP = 2; CHECKPOINT = 3; }
  SessionStatus status = 1;
  string checkpoint_path = 2;
  string msg = 3;
}

message TaggedRunMetadata { string tag = 1; bytes run_metadata = 2; }

message HistogramProto {
  double min = 1;
  double max = 2;
  double num = 3;
  double sum = 4;
  double sum_squares = 5;
  repeated double bucket_limit = 6 [packed = true];
  repeated double bucket = 7 [packed = true];
}

enum DataClass {
  DATA_CLASS_UNKNOWN = 0;
  DATA_CLASS_SCALAR = 1;
  DATA_CLASS_TENSOR = 2;
  DATA_CLASS_BLOB_SEQUENCE = 3;
}

message SummaryMetadata {
  message PluginData { string plugin_name = 1; bytes content = 2; }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
  DataClass data_class = 4;
}

message Summary {
  message Image {
    int32 height = 1;
    int32 width = 2;
    int32 colorspace = 3;
    bytes encoded_image_string = 4;
  }
  message Audio {
    float sample_rate = 1;
    int64 num_channels = 2;
    int64 length_frames = 3;
    bytes encoded_audio_string = 4;
    string content_type = 5;
  }
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
      Image image = 4;
      HistogramProto histo = 5;
      Audio audio = 6;
      TensorProto tensor = 8;
    }
  }
  repeated Value value = 1;
}

enum DataType {
  DT_INVALID = 0;
  DT_FLOAT = 1;
  DT_DOUBLE = 2;
  DT_INT32 = 3;
  DT_UINT8 = 4;
  DT_INT16 = 5;
  DT_INT8 = 6;
  DT_STRING = 7;
  DT_COMPLEX64 = 8;
  DT_INT64 = 9;
  DT_BOOL = 10;
  DT_QINT8 = 11;
  DT_QUINT8 = 12;
  DT_QINT32 = 13;
  DT_BFLOAT16 = 14;
  DT_QINT16 = 15;
  DT_QUINT16 = 16;
  DT_UINT16 = 17;
  DT_COMPLEX128 = 18;
  DT_HALF = 19;
  DT_RESOURCE = 20;
  DT_VARIANT = 21;
  DT_UINT32 = 22;
  DT_UINT64 = 23;
}

message TensorShapeProto {
  message Dim { int64 size = 1; string name = 2; }
  repeated Dim dim = 2;
  bool unknown_rank = 3;
}

message TensorProto {
  DataType dtype = 1;
  TensorShapeProto tensor_shape = 2;
  int32 version_number = 3;
  bytes tensor_content = 4;
  repeated int32 half_val = 13 [packed = true];
  repeated float float_val = 5 [packed = true];
  repeated double double_val = 6 [packed = true];
  repeated int32 int_val = 7 [packed = true];
  repeated bytes string_val = 8;
  repeated int64 int64_val = 10 [packed = true];
  repeated bool bool_val = 11 [packed = true];
  repeated uint32 uint32_val = 16 [packed = true];
  repeated uint64 uint64_val = 17 [packed = true];
}

// GraphDef / NodeDef: only what is needed to count and name nodes.
message NodeDef {
  string name = 1;
  string op = 2;
  repeated string input = 3;
  string device = 4;
}
message GraphDef { repeated NodeDef node = 1; }

// google/protobuf/struct.proto, redeclared with the same field numbers (wire compatible).
enum NullValue { NULL_VALUE = 0; }
message Struct { map<string, Value> fields = 1; }
message Value {
  oneof kind {
    NullValue null_value = 1;
    double number_value = 2;
    string string_value = 3;
    bool bool_value = 4;
    Struct struct_value = 5;
    ListValue list_value = 6;
  }
}
message ListValue { repeated Value values = 1; }

// tensorboard/plugins/hparams/api.proto
enum HParamDataType {
  DATA_TYPE_UNSET = 0;
  DATA_TYPE_STRING = 1;
  DATA_TYPE_BOOL = 2;
  DATA_TYPE_FLOAT64 = 3;
}
message Interval { double min_value = 1; double max_value = 2; }
message HParamInfo {
  string name = 1;
  string display_name = 2;
  string description = 3;
  HParamDataType type = 4;
  oneof domain {
    ListValue domain_discrete = 5;
    Interval domain_interval = 6;
  }
  bool differs = 7;
}
enum DatasetType { DATASET_UNKNOWN = 0; DATASET_TRAINING = 1; DATASET_VALIDATION = 2; }
message MetricName { string group = 1; string tag = 2; }
message MetricInfo {
  MetricName name = 1;
  string display_name = 3;
  string description = 4;
  DatasetType dataset_type = 5;
}
message Experiment {
  string name = 6;
  string description = 1;
  string user = 2;
  double time_created_secs = 3;
  repeated HParamInfo hparam_infos = 4;
  repeated MetricInfo metric_infos = 5;
}
enum Status { STATUS_UNKNOWN = 0; STATUS_SUCCESS = 1; STATUS_FAILURE = 2; STATUS_RUNNING = 3; }

// tensorboard/plugins/hparams/plugin_data.proto
message SessionStartInfo {
  map<string, Value> hparams = 1;
  string model_uri = 2;
  string monitor_url = 3;
  string group_name = 4;
  double start_time_secs = 5;
}
message SessionEndInfo { Status status = 1; double end_time_secs = 2; }
message HParamsPluginData {
  int32 version = 1;
  oneof data {
    Experiment experiment = 2;
    SessionStartInfo session_start_info = 3;
    SessionEndInfo session_end_info = 4;
  }
}

// tensorboard/plugins/pr_curve/plugin_data.proto
message PrCurvePluginData { int32 version = 1; uint32 num_thresholds = 2; }
// tensorboard/plugins/text/plugin_data.proto
message TextPluginData { int32 version = 1; }
// tensorboard/plugins/image/plugin_data.proto
message ImagePluginData { int32 version = 1; bool converted_to_tensor = 2; }
// tensorboard/plugins/scalar/plugin_data.proto and histogram/plugin_data.proto
message ScalarPluginData { int32 version = 1; }
message HistogramPluginData { int32 version = 1; }
`;

let root: protobuf.Root | undefined;

function loadRoot(): protobuf.Root {
  if (!root) {
    const parsed = protobuf.parse(TENSORBOARD_PROTO_SOURCE, { keepCase: true }).root;
    // resolveAll() applies field options: without it protobufjs ignores [packed = true] and writes
    // float_val/double_val unpacked, which readers accept but TensorFlow never writes.
    parsed.resolveAll();
    root = parsed;
  }
  return root;
}

/**
 * The parsed schema (built once). Look types up by their short name, e.g. `lookupProtoType("Event")`.
 *
 * @example const Event = lookupProtoType("Event"); Event.decode(bytes)
 */
export function lookupProtoType(name: string): protobuf.Type {
  return loadRoot().lookupType(`tb.${name}`);
}

/** Enum values of a schema enum by short name, e.g. `lookupProtoEnum("DataType").values.DT_FLOAT === 1`. */
export function lookupProtoEnum(name: string): protobuf.Enum {
  return loadRoot().lookupEnum(`tb.${name}`);
}
