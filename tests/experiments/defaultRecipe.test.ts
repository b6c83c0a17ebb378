import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  chooseTransferRecipe,
  computeRunConfigHash,
  DEFAULT_TRANSFER_RECIPE,
  explainRecipeWeightsError,
  formatExperimentRunName,
  RecipeWeightsMissingError,
  resolveExperimentRecipe,
  resolveRunIdentity,
  WeightsDownloadError,
} from "../../lib/index.js";
import { resolveExperimentConfig } from "../../lib/experiments/experimentConfig.js";
import type { RecipeTransferFigures } from "../../lib/index.js";

const root = path.join(__dirname, "..", "..");

/**
 * The rows of runs/recipes-transfer.json as the rule reads them: recipes trained on HAM only
 * (those trained with half of the external set score other patients, beside a HAM-only head there).
 */
function readRecipeTable(): RecipeTransferFigures[] {
  const table = JSON.parse(fs.readFileSync(path.join(root, "runs", "recipes-transfer.json"), "utf8")) as {
    rows: {
      recipe: string;
      losoMinRocAuc: number;
      external: { rocAuc: { estimate: number }; hamOnlyRocAuc?: unknown };
      cvPooledRocAuc: number;
    }[];
  };
  return table.rows
    .filter((r) => r.external.hamOnlyRocAuc === undefined)
    .map((r) => ({
      recipe: r.recipe,
      losoMinRocAuc: r.losoMinRocAuc,
      externalRocAuc: r.external.rocAuc.estimate,
      cvPooledRocAuc: r.cvPooledRocAuc,
    }));
}

describe("chooseTransferRecipe", () => {
  it("picks the highest min(worst-source LOSO, external) AUC; pooled CV only breaks ties", () => {
    const rows = [
      // min 0.60, best pooled CV: loses to b.
      { recipe: "a", losoMinRocAuc: 0.6, externalRocAuc: 0.7, cvPooledRocAuc: 0.95 },
      // min 0.62.
      { recipe: "b", losoMinRocAuc: 0.65, externalRocAuc: 0.62, cvPooledRocAuc: 0.8 },
      // min 0.62 too, higher pooled CV: wins the tie.
      { recipe: "c", losoMinRocAuc: 0.62, externalRocAuc: 0.9, cvPooledRocAuc: 0.85 },
    ];
    expect(chooseTransferRecipe(rows).recipe).toBe("c");
    expect(chooseTransferRecipe(rows, { overBudget: ["c"] }).recipe).toBe("b");
    expect(() => chooseTransferRecipe(rows, { overBudget: ["a", "b", "c"] })).toThrow(/3 recipes, 3 over budget/);
  });

  it("the default recipe is what the rule picks from runs/recipes-transfer.json, with its figures", () => {
    const rows = readRecipeTable();
    expect(rows.length).toBeGreaterThanOrEqual(20);
    const chosen = chooseTransferRecipe(rows);
    expect(chosen.recipe).toBe(DEFAULT_TRANSFER_RECIPE.name);
    const measured = DEFAULT_TRANSFER_RECIPE.measured;
    expect(chosen.losoMinRocAuc).toBeCloseTo(measured.losoMinRocAuc, 3);
    expect(chosen.externalRocAuc).toBeCloseTo(measured.externalRocAuc.estimate, 3);
    expect(chosen.cvPooledRocAuc).toBeCloseTo(measured.cvPooledRocAuc, 3);
  });
});

describe("resolveExperimentRecipe (npm run experiment's defaults)", () => {
  it("without --backbone: the default recipe's backbone, colour constancy, diagnosis target, logistic head, 20 epochs", () => {
    const resolved = resolveExperimentRecipe({});
    expect(resolved.recipe?.name).toBe("imagenet-sog-dx");
    expect(resolved.backboneName).toBe("mobilenet_v2_imagenet");
    expect(resolved.colourConstancy).toBe("shades-of-gray");
    expect(resolved.target).toBe("diagnosis");
    expect(resolved.epochs).toBe(20);
    expect(resolved.head).toEqual({ hiddenUnits: 0, dropoutRate: 0, l2: 1e-3, learningRate: 1e-3, batchSize: 32 });
  });

  it("flags given explicitly win over the recipe; an undefined flag does not", () => {
    const resolved = resolveExperimentRecipe({
      epochs: 7,
      head: { l2: 0.01, hiddenUnits: undefined },
      target: "malignant",
    });
    expect(resolved.epochs).toBe(7);
    expect(resolved.target).toBe("malignant");
    expect(resolved.head.l2).toBe(0.01);
    expect(resolved.head.hiddenUnits).toBe(0);
  });

  it("with --backbone: no recipe, only the flags given (runExperiment's own defaults fill the rest)", () => {
    const resolved = resolveExperimentRecipe({ backboneName: "mobilenet_v2", head: { hiddenUnits: undefined } });
    expect(resolved).toEqual({
      recipe: undefined,
      backboneName: "mobilenet_v2",
      colourConstancy: undefined,
      target: undefined,
      epochs: undefined,
      head: {},
    });
  });

  it("resolves to an experiment config with Shades of Gray, a -dx-sog run name, and refuses fine-tuning with it", () => {
    const recipe = resolveExperimentRecipe({});
    const dataDir = path.join(root, "tests");
    const config = resolveExperimentConfig({
      dataDir,
      backboneName: recipe.backboneName,
      colourConstancy: recipe.colourConstancy,
      target: recipe.target,
      epochs: recipe.epochs,
      head: recipe.head,
      log: () => {},
    });
    expect(config.colourConstancy).toBe("shades-of-gray");
    expect(config.target).toBe("diagnosis");
    expect(config.head).toMatchObject({ hiddenUnits: 0, dropoutRate: 0, l2: 1e-3, epochs: 20 });
    expect(config.runName).toMatch(/^tests-mobilenet_v2_imagenet-lesion5-e20-s42-dx-sog-[0-9a-f]{8}$/);
    expect(() =>
      resolveExperimentConfig({
        dataDir,
        backboneName: "mobilenet_v2_imagenet",
        colourConstancy: "shades-of-gray",
        fineTuneEpochs: 1,
      }),
    ).toThrow(/fineTuneEpochs: received 1 with colour constancy shades-of-gray; expected 0/);
    expect(() =>
      resolveExperimentConfig({ dataDir, backboneName: "mobilenet_v2", colourConstancy: "grey" as never }),
    ).toThrow(/grey/);
  });

  it("colour constancy changes the run's hash; without it the hash is what it was before the option existed", () => {
    const base = {
      dataDir: "/d/ham10000-dev",
      backboneName: "mobilenet_v2_imagenet",
      target: "diagnosis" as const,
      head: { hiddenUnits: 0, dropoutRate: 0, l2: 1e-3 },
      epochs: 20,
    };
    // Computed with the code of commit 13ab56c, before colourConstancy was part of the identity.
    expect(computeRunConfigHash(resolveRunIdentity(base))).toBe("3cf3894d");
    expect(computeRunConfigHash(resolveRunIdentity({ ...base, colourConstancy: "none" }))).toBe("3cf3894d");
    const sog = computeRunConfigHash(resolveRunIdentity({ ...base, colourConstancy: "shades-of-gray" }));
    expect(sog).not.toBe("3cf3894d");
    expect(formatExperimentRunName({ ...base, colourConstancy: "shades-of-gray" })).toBe(
      `ham10000-dev-mobilenet_v2_imagenet-lesion5-e20-s42-dx-sog-${sog}`,
    );
  });
});

describe("explainRecipeWeightsError", () => {
  it("turns missing weights into a message naming MELANOMA_LAB_WEIGHTS_DIR and the fallback flag", () => {
    const missing = new WeightsDownloadError(
      "mobilenet_v2_imagenet: none of /x/a.onnx exists, and downloading failed: offline",
    );
    const explained = explainRecipeWeightsError(missing, DEFAULT_TRANSFER_RECIPE, "--backbone mobilenet_v2");
    expect(explained).toBeInstanceOf(RecipeWeightsMissingError);
    const message = (explained as Error).message;
    expect(message).toContain("imagenet-sog-dx needs the mobilenet_v2_imagenet weights");
    expect(message).toContain("none of /x/a.onnx exists");
    expect(message).toContain("MELANOMA_LAB_WEIGHTS_DIR");
    expect(message).toContain("pass --backbone mobilenet_v2");
  });

  it("returns any other error as it is", () => {
    const other = new Error("disk full");
    expect(explainRecipeWeightsError(other, DEFAULT_TRANSFER_RECIPE, "--backbone mobilenet_v2")).toBe(other);
  });
});
