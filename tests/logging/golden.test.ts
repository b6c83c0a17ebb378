import fs from "node:fs";
import path from "node:path";
import { expect, it } from "vitest";
import { readEventFile } from "../../lib/logging/eventFile.js";
import { readLogDir } from "../../lib/logging/readLogDir.js";
import { describeRequiring, findSharedPath, missingSharedPath } from "../helpers/shared.js";
import { listJsonDifferences, projectEventFile, projectLogDirData } from "./tensorboardReport.js";

const goldenRoot = findSharedPath("tfevents-golden");
const sets = goldenRoot
  ? fs
      .readdirSync(path.join(goldenRoot, "_expected"))
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.replace(/\.json$/, ""))
      .sort()
  : [];

describeRequiring(
  missingSharedPath("tfevents-golden"),
  "reader parity with TensorBoard's own loader (tfevents-golden)",
  () => {
    it("covers every golden set", () => {
      expect(sets).toEqual(["guild", "lingvo", "sketch_vlm", "tb-reference", "tensorboard", "tfevents-js", "wandb"]);
    });

    for (const set of sets) {
      it(`${set}: runs, tags per plugin and series equal TensorBoard's`, () => {
        const expected = JSON.parse(fs.readFileSync(path.join(goldenRoot!, "_expected", `${set}.json`), "utf8"));
        const contents = readLogDir(path.join(goldenRoot!, set));
        expect(contents.problems).toEqual([]);
        expect(contents.runs.map((r) => r.name)).toEqual(expected.runs);
        const differences = listJsonDifferences(expected.data, projectLogDirData(contents), `${set}.data`);
        expect(differences).toEqual([]);
      });

      it(`${set}: per-file record counts, kinds and tags equal TensorBoard's`, () => {
        const expected = JSON.parse(fs.readFileSync(path.join(goldenRoot!, "_expected", `${set}.json`), "utf8"));
        const differences: string[] = [];
        for (const file of expected.files) {
          const actual = projectEventFile(readEventFile(path.join(goldenRoot!, file.path)), goldenRoot!);
          listJsonDifferences(file, actual, file.path, differences);
        }
        expect(differences).toEqual([]);
      });
    }
  },
);
