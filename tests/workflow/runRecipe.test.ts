import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ConfigError,
  DEFAULT_TRANSFER_RECIPE,
  describeRunConfig,
  findProjectRoot,
  resolveRunConfig,
  resolveRunHeadOptions,
  runPixelTransform,
  selectDemoRecipe,
} from "../../lib/index.js";
import type { LesionRecord } from "../../lib/index.js";

afterEach(() => {
  vi.unstubAllEnvs();
});

function clearRecipeEnv(): void {
  for (const name of [
    "MELANOMA_LAB_RECIPE",
    "MELANOMA_LAB_BACKBONE",
    "MELANOMA_LAB_COLOUR_CONSTANCY",
    "MELANOMA_LAB_HEAD_TARGET",
    "MELANOMA_LAB_FINE_TUNE_EPOCHS",
    "MELANOMA_LAB_SMALL",
    "MELANOMA_LAB_DATA",
  ])
    vi.stubEnv(name, "");
}

describe("selectDemoRecipe (npm run demo's default)", () => {
  it("real data without a backbone runs the default recipe", () => {
    expect(selectDemoRecipe("../shared/data/ham10000-dev", undefined)).toBe(DEFAULT_TRANSFER_RECIPE);
    expect(selectDemoRecipe("/anywhere/my-isic", "")).toBe(DEFAULT_TRANSFER_RECIPE);
  });

  it("the synthetic default (no --data, or data/synthetic*) keeps the bundled backbone, offline", () => {
    expect(selectDemoRecipe(undefined, undefined)).toBeUndefined();
    expect(selectDemoRecipe(path.join(findProjectRoot(), "data", "synthetic"), undefined)).toBeUndefined();
    expect(selectDemoRecipe(path.join(findProjectRoot(), "data", "synthetic-small"), undefined)).toBeUndefined();
  });

  it("a chosen backbone wins over the recipe", () => {
    expect(selectDemoRecipe("../shared/data/ham10000-dev", "mobilenet_v2")).toBeUndefined();
  });
});

describe("resolveRunConfig with MELANOMA_LAB_RECIPE (what the notebooks resolve to)", () => {
  it("without a recipe: the bundled mobilenet_v2, no colour constancy, a binary head, fine-tuning on", () => {
    clearRecipeEnv();
    const config = resolveRunConfig({ seed: 42 });
    expect(config.recipeName).toBeUndefined();
    expect(config.backboneName).toBe("mobilenet_v2");
    expect(config.colourConstancy).toBe("none");
    expect(config.headTarget).toBe("malignant");
    expect(config.headHiddenUnits).toBeUndefined();
    expect(config.fineTuneEpochs).toBe(1);
    expect(runPixelTransform(config)).toBeUndefined();
  });

  it("the default recipe sets backbone, Shades of Gray, diagnosis head, logistic L2 1e-3 and no fine-tuning", () => {
    clearRecipeEnv();
    vi.stubEnv("MELANOMA_LAB_RECIPE", DEFAULT_TRANSFER_RECIPE.name);
    const config = resolveRunConfig({ seed: 42, epochs: 40, fineTuneEpochs: 1 });
    expect(config.recipeName).toBe("imagenet-sog-dx");
    expect(config.backboneName).toBe("mobilenet_v2_imagenet");
    expect(config.colourConstancy).toBe("shades-of-gray");
    expect(config.headTarget).toBe("diagnosis");
    expect([config.headHiddenUnits, config.headDropoutRate, config.headL2]).toEqual([0, 0, 1e-3]);
    expect(config.fineTuneEpochs).toBe(0);
    // The notebooks' features carry the bench's Shades-of-Gray cache key.
    expect(runPixelTransform(config)?.name).toBe("shades-of-gray-p6+dihedral:h0q0");
    expect(describeRunConfig(config)).toContain("recipe imagenet-sog-dx");
    expect(describeRunConfig(config)).toContain("colour constancy shades-of-gray, head target diagnosis");
  });

  it("MELANOMA_LAB_BACKBONE and the other variables still win over the recipe", () => {
    clearRecipeEnv();
    vi.stubEnv("MELANOMA_LAB_RECIPE", DEFAULT_TRANSFER_RECIPE.name);
    vi.stubEnv("MELANOMA_LAB_BACKBONE", "mobilenet_v2");
    vi.stubEnv("MELANOMA_LAB_COLOUR_CONSTANCY", "none");
    vi.stubEnv("MELANOMA_LAB_HEAD_TARGET", "malignant");
    const config = resolveRunConfig({ seed: 42 });
    expect(config.backboneName).toBe("mobilenet_v2");
    expect(config.colourConstancy).toBe("none");
    expect(config.headTarget).toBe("malignant");
    expect(config.fineTuneEpochs).toBe(1);
  });

  it("refuses an unknown recipe, colour constancy or target, and fine-tuning with colour constancy", () => {
    clearRecipeEnv();
    vi.stubEnv("MELANOMA_LAB_RECIPE", "imagenet-best");
    expect(() => resolveRunConfig()).toThrow(ConfigError);
    expect(() => resolveRunConfig()).toThrow(/"imagenet-best" is not a known recipe; expected one of imagenet-sog-dx/);
    clearRecipeEnv();
    vi.stubEnv("MELANOMA_LAB_COLOUR_CONSTANCY", "grey-world");
    expect(() => resolveRunConfig()).toThrow(/received "grey-world", expected one of none, shades-of-gray/);
    clearRecipeEnv();
    vi.stubEnv("MELANOMA_LAB_HEAD_TARGET", "dx");
    expect(() => resolveRunConfig()).toThrow(/received "dx", expected one of malignant, diagnosis/);
    clearRecipeEnv();
    vi.stubEnv("MELANOMA_LAB_COLOUR_CONSTANCY", "shades-of-gray");
    vi.stubEnv("MELANOMA_LAB_FINE_TUNE_EPOCHS", "2");
    expect(() => resolveRunConfig()).toThrow(/received 2 with colour constancy shades-of-gray; expected 0/);
  });
});

describe("resolveRunHeadOptions", () => {
  const record = (imageId: string, diagnosis: string, label: "benign" | "malignant"): LesionRecord =>
    ({ imageId, imagePath: `/x/${imageId}.jpg`, label, diagnosis }) as LesionRecord;
  const records = [record("a", "nv", "benign"), record("b", "mel", "malignant"), record("c", "bcc", "malignant")];

  it("a diagnosis head gets each feature row's diagnosis (rows in table order) and the malignant ones", () => {
    const options = resolveRunHeadOptions(
      { headTarget: "diagnosis", headHiddenUnits: 0, headDropoutRate: 0, headL2: 1e-3, dataDir: "/x" },
      records,
      ["c", "a", "b"],
    );
    expect(options).toEqual({
      hiddenUnits: 0,
      dropoutRate: 0,
      l2: 1e-3,
      diagnoses: ["bcc", "nv", "mel"],
      malignantDiagnoses: ["bcc", "mel"],
    });
  });

  it("a binary head without settings passes nothing (trainHead's defaults)", () => {
    expect(resolveRunHeadOptions({ headTarget: "malignant", dataDir: "/x" }, records, ["a"])).toEqual({});
  });

  it("refuses a diagnosis head on records without diagnoses, naming the image", () => {
    const bare = [{ imageId: "s1", imagePath: "/x/s1.jpg", label: "benign" } as LesionRecord];
    expect(() => resolveRunHeadOptions({ headTarget: "diagnosis", dataDir: "/syn" }, bare, ["s1"])).toThrow(
      /1 of 1 images in \/syn have no diagnosis \(e.g. s1\)/,
    );
  });
});
