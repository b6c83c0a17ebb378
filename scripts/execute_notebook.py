#!/usr/bin/python3
"""Executes one notebook through the real tslab kernel over the Jupyter protocol (nbclient).

Usage: execute_notebook.py IN.ipynb OUT.ipynb OUT.html --root PROJECT_ROOT [--timeout SECONDS] [--progress-json]
       execute_notebook.py --batch JOBS.json --root PROJECT_ROOT [--timeout SECONDS] [--progress-json]

--batch runs several notebooks in order in ONE kernel (a list of {input, output_ipynb,
output_html}), resetting the kernel's declarations between them: the kernel start and tslab's
compile of lib/ are paid once. With --progress-json it also reports {"event": "notebook",
"index": k} and {"event": "notebook-end", "index": k, "status": s}; it stops at the first failure.

With --progress-json, stdout carries one JSON object per line while the notebook runs:
{"event": "cell", "cell": n, "cells": N} as code cell n of N (1-based) starts, and
{"event": "stream", "name": "stdout"|"stderr", "text": ...} for each stream output, live.

Saves the executed copy (also when a cell fails, so nothing already computed is lost), signs it
so classic Notebook trusts its HTML/JS outputs, and renders it to HTML with nbconvert.
Exit status 0 on success, 3 when a cell raised (the failing cell is named on stderr), 2 on
other errors. Runs under Debian's /usr/bin/python3, which has nbclient.
"""
import argparse
import copy
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from nbclient.util import run_sync


def cell_error_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
            parts.extend(out.get("traceback", []))
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts).strip()


def emit_progress(event):
    # One line per event, flushed at once: the caller shows it while the cell is still running.
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class ProgressNotebookClient(NotebookClient):
    """NotebookClient that reports each code cell as it starts and each stream output as it arrives."""

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "stream":
            content = msg["content"]
            emit_progress({"event": "stream", "name": content.get("name", "stdout"), "text": content.get("text", "")})
        return super().output(outs, msg, display_id, cell_index)


# Sent as an extra first cell of every notebook after the first in --batch mode; the kernel
# launcher (jupyter/kernels/tslab-melanoma/launch.cjs) answers it by resetting tslab's executor:
# every declaration of the notebook before is dropped (a cell that used one fails to compile, as in
# a fresh kernel), while the compiled lib/ and the started tfjs backend stay.
RESET_CELL_SOURCE = "/* melanoma-lab: reset kernel state */"


def execute_and_save(nb, input_path, output_ipynb, output_html, args, client=None, reset_first=False):
    """Executes nb (with `client`'s kernel when given), saves, signs and renders it; returns (status, client)."""
    if reset_first:
        nb.cells.insert(0, nbformat.v4.new_code_cell(RESET_CELL_SOURCE))
    resources = {"metadata": {"path": os.path.dirname(os.path.abspath(input_path))}}
    shared_kernel = client is not None
    if client is None:
        client_class = ProgressNotebookClient if args.progress_json else NotebookClient
        client = client_class(nb, kernel_name="tslab-melanoma", timeout=args.timeout, resources=resources,
                              allow_errors=False)
    else:
        # One client (and so one kernel and one kernel client, bound to one event loop) for the batch.
        client.nb = nb
        client.resources = resources
    if args.progress_json:
        code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source != RESET_CELL_SOURCE]
        ordinal = {cell_index: n + 1 for n, cell_index in enumerate(code_cells)}

        def report_cell_start(cell, cell_index):
            # nbclient calls the hook for markdown cells too; only code cells are counted.
            if cell_index in ordinal:
                emit_progress({"event": "cell", "cell": ordinal[cell_index], "cells": len(code_cells)})

        client.on_cell_start = report_cell_start
    status = 0
    try:
        # The kernel is kept for the next notebook of a batch; the caller shuts it down.
        client.execute(cleanup_kc=False)
    except (CellExecutionError, CellTimeoutError) as err:
        status = 3
        if reset_first:
            nb.cells.pop(0)
        failing = None
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                failing = (index, cell)
        if failing is None:
            # tslab reports some failures only on stderr; the last executed cell is the one.
            executed = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
            failing = executed[-1] if executed else (None, None)
        index, cell = failing
        source = (cell.source if cell is not None else "").strip()
        detail = cell_error_text(cell) if cell is not None else str(err)
        if isinstance(err, CellTimeoutError):
            detail = f"timed out after {args.timeout} s. {detail}"
        sys.stderr.write(
            f"NOTEBOOK FAILED: {os.path.basename(input_path)} cell {index} (0-based, counting markdown cells)\n"
            f"--- cell source ---\n{source}\n--- error ---\n{detail or str(err)}\n")
        reset_first = False
    except Exception as err:  # kernel died, missing kernel spec, ...
        sys.stderr.write(f"NOTEBOOK FAILED: {os.path.basename(input_path)}: {type(err).__name__}: {err}\n")
        status = 2
    if reset_first and nb.cells and nb.cells[0].source == RESET_CELL_SOURCE:
        nb.cells.pop(0)
    if shared_kernel:
        # The shared kernel keeps counting across notebooks; number this notebook's cells from 1.
        count = 0
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.get("execution_count"):
                count += 1
                cell.execution_count = count
                for out in cell.get("outputs", []):
                    if out.get("execution_count"):
                        out["execution_count"] = count

    os.makedirs(os.path.dirname(os.path.abspath(output_ipynb)), exist_ok=True)
    try:
        from nbformat.sign import NotebookNotary
        NotebookNotary().sign(nb)
    except Exception as err:  # signing is a convenience; the executed notebook matters more
        sys.stderr.write(f"warning: could not sign {output_ipynb}: {err}\n")
    nbformat.write(nb, output_ipynb)
    # Rendered on a worker thread while the next notebook of a batch runs in the kernel (a separate
    # process); main() waits for every rendering before it exits.
    HTML_RENDERING.append(HTML_RENDERER.submit(render_html, copy.deepcopy(nb), output_html))
    return status, client


HTML_RENDERER = ThreadPoolExecutor(max_workers=1)
HTML_RENDERING = []


def render_html(nb, output_html):
    try:
        from nbconvert import HTMLExporter
        body, _ = HTMLExporter().from_notebook_node(nb)
        with open(output_html, "w", encoding="utf-8") as fh:
            fh.write(body)
    except Exception as err:
        sys.stderr.write(f"warning: could not render {output_html}: {err}\n")


def shutdown(client):
    if client is None or client.km is None:
        return
    try:
        run_sync(client._async_cleanup_kernel)()
    except Exception as err:  # the kernel may already be gone after a failure
        sys.stderr.write(f"warning: kernel shutdown: {err}\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("input", nargs="?")
    parser.add_argument("output_ipynb", nargs="?")
    parser.add_argument("output_html", nargs="?")
    parser.add_argument("--batch", help="JSON file: a list of {input, output_ipynb, output_html}, run in one kernel")
    parser.add_argument("--root", required=True)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--progress-json", action="store_true")
    args = parser.parse_args()

    os.environ["JUPYTER_PATH"] = os.path.join(args.root, "jupyter") + (
        os.pathsep + os.environ["JUPYTER_PATH"] if os.environ.get("JUPYTER_PATH") else "")
    if args.batch:
        with open(args.batch, encoding="utf-8") as fh:
            jobs = json.load(fh)
    elif args.input and args.output_ipynb and args.output_html:
        jobs = [{"input": args.input, "output_ipynb": args.output_ipynb, "output_html": args.output_html}]
    else:
        parser.error("give IN.ipynb OUT.ipynb OUT.html, or --batch FILE.json")
    client = None
    status = 0
    for index, job in enumerate(jobs):
        if args.batch and args.progress_json:
            emit_progress({"event": "notebook", "index": index})
        nb = nbformat.read(job["input"], as_version=4)
        status, client = execute_and_save(nb, job["input"], job["output_ipynb"], job["output_html"], args, client,
                                          index > 0)
        if args.batch and args.progress_json:
            emit_progress({"event": "notebook-end", "index": index, "status": status})
        if status != 0:
            break
    shutdown(client)
    for rendering in HTML_RENDERING:
        rendering.result()
    sys.exit(status)


if __name__ == "__main__":
    main()
