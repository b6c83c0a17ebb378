#!/usr/bin/python3
"""Executes one notebook through the real tslab kernel over the Jupyter protocol (nbclient).

Usage: execute_notebook.py IN.ipynb OUT.ipynb OUT.html --root PROJECT_ROOT [--timeout SECONDS] [--progress-json]

With --progress-json, stdout carries one JSON object per line while the notebook runs:
{"event": "cell", "cell": n, "cells": N} as code cell n of N (1-based) starts, and
{"event": "stream", "name": "stdout"|"stderr", "text": ...} for each stream output, live.

Saves the executed copy (also when a cell fails, so nothing already computed is lost), signs it
so classic Notebook trusts its HTML/JS outputs, and renders it to HTML with nbconvert.
Exit status 0 on success, 3 when a cell raised (the failing cell is named on stderr), 2 on
other errors. Runs under Debian's /usr/bin/python3, which has nbclient.
"""
import argparse
import json
import os
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output_ipynb")
    parser.add_argument("output_html")
    parser.add_argument("--root", required=True)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--progress-json", action="store_true")
    args = parser.parse_args()

    os.environ["JUPYTER_PATH"] = os.path.join(args.root, "jupyter") + (
        os.pathsep + os.environ["JUPYTER_PATH"] if os.environ.get("JUPYTER_PATH") else "")
    nb = nbformat.read(args.input, as_version=4)
    client_class = ProgressNotebookClient if args.progress_json else NotebookClient
    client = client_class(
        nb,
        kernel_name="tslab-melanoma",
        timeout=args.timeout,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(args.input))}},
        allow_errors=False,
    )
    if args.progress_json:
        code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        ordinal = {cell_index: n + 1 for n, cell_index in enumerate(code_cells)}

        def report_cell_start(cell, cell_index):
            # nbclient calls the hook for markdown cells too; only code cells are counted.
            if cell_index in ordinal:
                emit_progress({"event": "cell", "cell": ordinal[cell_index], "cells": len(code_cells)})

        client.on_cell_start = report_cell_start
    status = 0
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as err:
        status = 3
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
            f"NOTEBOOK FAILED: {os.path.basename(args.input)} cell {index} (0-based, counting markdown cells)\n"
            f"--- cell source ---\n{source}\n--- error ---\n{detail or str(err)}\n")
    except Exception as err:  # kernel died, missing kernel spec, ...
        sys.stderr.write(f"NOTEBOOK FAILED: {os.path.basename(args.input)}: {type(err).__name__}: {err}\n")
        status = 2

    os.makedirs(os.path.dirname(os.path.abspath(args.output_ipynb)), exist_ok=True)
    try:
        from nbformat.sign import NotebookNotary
        NotebookNotary().sign(nb)
    except Exception as err:  # signing is a convenience; the executed notebook matters more
        sys.stderr.write(f"warning: could not sign {args.output_ipynb}: {err}\n")
    nbformat.write(nb, args.output_ipynb)
    try:
        from nbconvert import HTMLExporter
        body, _ = HTMLExporter().from_notebook_node(nb)
        with open(args.output_html, "w", encoding="utf-8") as fh:
            fh.write(body)
    except Exception as err:
        sys.stderr.write(f"warning: could not render {args.output_html}: {err}\n")
    sys.exit(status)


if __name__ == "__main__":
    main()
