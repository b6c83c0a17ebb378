import fs from "node:fs";
import path from "node:path";
import type { LogDirContents } from "./readLogDir.js";

/** What to tell a user who has no `tensorboard` command. */
export const TENSORBOARD_INSTALL_HINT = "pip install tensorboard   (then: npm run tensorboard)";

/**
 * The `tensorboard` executable on `pathEnv` (default `$PATH`), or undefined when there is none.
 *
 * @example findTensorBoardExecutable() // "/usr/local/bin/tensorboard"
 */
export function findTensorBoardExecutable(pathEnv: string = process.env.PATH ?? ""): string | undefined {
  const names = process.platform === "win32" ? ["tensorboard.exe", "tensorboard.cmd", "tensorboard"] : ["tensorboard"];
  for (const dir of pathEnv.split(path.delimiter)) {
    if (!dir) continue;
    for (const name of names) {
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        if (fs.statSync(candidate).isFile()) return candidate;
      } catch {
        // Not here (or not executable): keep looking along PATH.
      }
    }
  }
  return undefined;
}

/**
 * A plain-text listing of a logdir as our reader sees it: each run, its tags per plugin with the
 * number of points and the last step, and any damaged records (file + byte offset).
 *
 * @example console.log(formatLogDirSummary(readLogDir("logs")))
 */
export function formatLogDirSummary(contents: LogDirContents): string {
  const lines = [`${contents.logdir}: ${contents.runs.length} run${contents.runs.length === 1 ? "" : "s"}`];
  for (const run of contents.runs) {
    lines.push(`  ${run.name}`);
    const plugins = Object.keys(run.tagsByPlugin).sort();
    if (plugins.length === 0) lines.push("    (no summaries yet)");
    for (const plugin of plugins) {
      const tags = run.tagsByPlugin[plugin].map((tag) => {
        const points = run.tensorsByTag[tag] ?? [];
        const lastStep = points.length > 0 ? points[points.length - 1].step : undefined;
        return lastStep === undefined ? tag : `${tag} (${points.length} pts, last step ${lastStep})`;
      });
      lines.push(`    ${plugin}: ${tags.join(", ")}`);
    }
  }
  for (const problem of contents.problems) lines.push(`  problem: ${problem.reason}`);
  return lines.join("\n");
}
