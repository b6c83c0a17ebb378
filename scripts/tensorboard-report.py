#!/usr/bin/env python3
"""What real TensorBoard reads from a log dir, as JSON (an independent check of our event writer).

Needs the `tensorboard` Python package (pip install tensorboard; no TensorFlow needed), so it does
not run on the project's usual machines; it was run on a machine that has it, and its report is
kept next to the log dir it read (tests/logging/fixtures/tb-writer/). The `data` section has the
shape of tests/logging/tensorboardReport.ts's projectLogDirData (and of ../shared/tfevents-golden/
_expected/*.json), so our reader's view and TensorBoard's can be compared field by field.

Two views, both TensorBoard's own code:
  * data: the event multiplexer TensorBoard's server uses (all samples kept), per run, plugin, tag;
  * http: a real `tensorboard` server on 127.0.0.1 (--load_fast=false, everything loaded before
    serving), the JSON its dashboards fetch: runs, plugins, scalars, histograms, distributions,
    images (with one image fetched per tag), text, PR curves, the Keras graph, hparams.
Warnings TensorBoard logs while loading are listed; an exception in one section is recorded and
the other sections still run.

Usage: python3 scripts/tensorboard-report.py LOGDIR [--no-http] > report.json
"""
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse
import urllib.request


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def _tensor_values(tensor_proto):
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(tensor_proto)


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _image_info(blob):
    try:
        from PIL import Image

        with Image.open(io.BytesIO(blob)) as im:
            return {"bytes": len(blob), "format": im.format, "width": im.width, "height": im.height, "mode": im.mode}
    except Exception as e:  # noqa: BLE001 - an unreadable image is a finding, not a crash
        return {"bytes": len(blob), "error": repr(e)}


def _hparams_plugin_data(content):
    from google.protobuf import json_format
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    which = data.WhichOneof("data")
    return json_format.MessageToDict(getattr(data, which)) if which else {}


def read_data(logdir):
    """Per run: start_time and, per plugin and tag, what the multiplexer holds (all samples)."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem

    keep_all = {ea.COMPRESSED_HISTOGRAMS: 0, ea.IMAGES: 0, ea.AUDIO: 0, ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0}
    mux = pem.EventMultiplexer(size_guidance=keep_all, tensor_size_guidance={}, purge_orphaned_data=True)
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    data = {}
    for run in sorted(mux.Runs()):
        out = {"start_time": mux.FirstEventTimestamp(run)}
        tags = mux.Runs()[run].get(ea.TENSORS, [])
        for tag in sorted(tags):
            meta = mux.SummaryMetadata(run, tag)
            plugin = meta.plugin_data.plugin_name or "(none)"
            events = mux.Tensors(run, tag)
            head = {"count": len(events), "max_step": max((e.step for e in events), default=0)}
            if plugin == "scalars":
                entry = {
                    **head,
                    "display_name": meta.display_name,
                    "description": meta.summary_description,
                    "points": [[e.step, float(_tensor_values(e.tensor_proto).item()), e.wall_time] for e in events],
                }
            elif plugin == "histograms":
                steps = []
                for e in events:
                    arr = _tensor_values(e.tensor_proto)
                    steps.append({
                        "step": e.step,
                        "wall_time": e.wall_time,
                        "shape": list(arr.shape),
                        "buckets": arr.tolist(),
                        "total_count": float(arr[:, 2].sum()) if arr.size else 0.0,
                    })
                entry = {**head, "display_name": meta.display_name, "steps": steps}
            elif plugin == "text":
                steps = []
                for e in events:
                    arr = _tensor_values(e.tensor_proto)
                    value = _decode(arr.item()) if arr.shape == () else _decode(arr.tolist())
                    steps.append({"step": e.step, "wall_time": e.wall_time, "shape": list(arr.shape), "value": value})
                entry = {**head, "display_name": meta.display_name, "steps": steps}
            elif plugin == "hparams":
                entry = {**head, "display_name": meta.display_name, "plugin_data": _hparams_plugin_data(meta.plugin_data.content)}
            elif plugin == "images":
                steps = []
                for e in events:
                    blobs = list(e.tensor_proto.string_val)
                    steps.append({
                        "step": e.step,
                        "wall_time": e.wall_time,
                        "n_blobs": len(blobs),
                        "declared_width": _decode(blobs[0]) if blobs else None,
                        "declared_height": _decode(blobs[1]) if len(blobs) > 1 else None,
                        "images": [_image_info(b) for b in blobs[2:]],
                    })
                entry = {
                    "count": head["count"],
                    "max_step": head["max_step"],
                    "max_length": max((len(e.tensor_proto.string_val) for e in events), default=0),
                    "steps": steps,
                }
            else:
                steps = []
                for e in events:
                    shape = [d.size for d in e.tensor_proto.tensor_shape.dim]
                    step = {"step": e.step, "shape": shape}
                    if plugin == "graph_keras_model":
                        # The Keras model config TensorBoard's graph dashboard parses.
                        config = json.loads(_decode(e.tensor_proto.string_val[0]))
                        step["keras_class_name"] = config.get("class_name")
                        step["keras_layers"] = [l.get("config", {}).get("name") for l in config.get("config", {}).get("layers", [])]
                    steps.append(step)
                entry = {**head, "display_name": meta.display_name, "steps": steps}
            out.setdefault(plugin, {})[tag] = entry
        data[run] = out
    return data


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(base, path, body=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method="GET" if body is None else "POST")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    t = time.time()
    entry = {"method": req.get_method(), "path": path}
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            entry.update(status=resp.status, content_type=resp.headers.get("Content-Type", "").split(";")[0], bytes=len(raw))
    except urllib.error.HTTPError as e:
        raw = e.read()
        entry.update(status=e.code, content_type=e.headers.get("Content-Type", "").split(";")[0], bytes=len(raw))
    entry["ms"] = round((time.time() - t) * 1000, 1)
    if entry["content_type"] == "application/json":
        entry["json"] = json.loads(raw)
    elif entry["content_type"].startswith("image/"):
        entry["image"] = _image_info(raw)
    else:
        entry["text_head"] = raw[:300].decode("utf-8", errors="replace")
    return entry


def read_http(logdir, report):
    port = _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port),
           "--load_fast=false", "--reload_interval=0", "--reload_task=blocking",
           # A plugin downsamples to this many points per tag (0 would mean none): keep them all.
           "--samples_per_plugin=" + ",".join(f"{p}=1000000000" for p in ["scalars", "images", "histograms", "text", "pr_curves", "hparams", "graphs"])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    calls = []
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/data/runs", timeout=2).read()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        get = lambda p, body=None: calls.append(_request(base, p, body)) or calls[-1]  # noqa: E731
        q = urllib.parse.quote
        get("/data/environment")
        runs = get("/data/runs").get("json", [])
        get("/data/plugins_listing")
        get("/data/plugin/timeseries/tags")
        for plugin, series in [("scalars", "scalars"), ("histograms", "histograms"), ("distributions", "distributions"), ("text", "text"), ("pr_curves", "pr_curves")]:
            tags = get(f"/data/plugin/{plugin}/tags").get("json", {})
            for run in sorted(tags):
                run_tags = tags[run]
                names = sorted(run_tags) if isinstance(run_tags, dict) else sorted(run_tags)
                for tag in names:
                    get(f"/data/plugin/{plugin}/{series}?run={q(run)}&tag={q(tag)}")
        image_tags = get("/data/plugin/images/tags").get("json", {})
        for run in sorted(image_tags):
            for tag, info in sorted(image_tags[run].items()):
                for sample in range(info.get("samples", 1)):
                    listing = get(f"/data/plugin/images/images?run={q(run)}&tag={q(tag)}&sample={sample}").get("json", [])
                    for item in listing:
                        get("/data/plugin/images/individualImage?" + item["query"])
        graph_info = get("/data/plugin/graphs/info").get("json", {})
        for run, info in sorted(graph_info.items()):
            for tag in sorted(info.get("tags", {})):
                get(f"/data/plugin/graphs/graph?run={q(run)}&tag={q(tag)}&conceptual=true")
        experiment = get("/data/plugin/hparams/experiment", {"experimentName": ""}).get("json", {})
        col_params = [{"hparam": h["name"]} for h in experiment.get("hparamInfos", [])]
        col_params += [{"metric": m["name"]} for m in experiment.get("metricInfos", [])]
        get("/data/plugin/hparams/session_groups", {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": col_params,
            "aggregationType": "AGGREGATION_AVG",
            "startIndex": 0,
            "sliceSize": 1000,
        })
        report["http_runs"] = runs
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        report["tensorboard_log"] = out.decode("utf-8", errors="replace").splitlines()[-40:]
    return calls


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    logdir = os.path.abspath(args[0])
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    report = {"logdir": os.path.basename(logdir), "errors": []}
    try:
        import tensorboard

        report["tensorboard_version"] = tensorboard.__version__
    except Exception as e:  # noqa: BLE001
        report["errors"].append({"section": "import", "error": repr(e)})
        print(json.dumps(report, indent=1))
        return 1
    t = time.time()
    try:
        report["data"] = read_data(logdir)
        report["runs"] = sorted(report["data"])
        report["plugins_with_data"] = sorted({p for r in report["data"].values() for p in r if p != "start_time"})
    except Exception:  # noqa: BLE001
        report["errors"].append({"section": "data", "error": traceback.format_exc()})
    report["timing_s"] = {"data": round(time.time() - t, 3)}
    if "--no-http" not in argv:
        t = time.time()
        try:
            report["http"] = read_http(logdir, report)
            report["http_failures"] = [c["path"] for c in report["http"] if c.get("status") != 200]
        except Exception:  # noqa: BLE001
            report["errors"].append({"section": "http", "error": traceback.format_exc()})
        report["timing_s"]["http"] = round(time.time() - t, 3)
    report["warnings"] = collect.records
    report["ok"] = not report["errors"] and not report["warnings"] and not report.get("http_failures")
    print(json.dumps(report, indent=1, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
