import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { MelanomaLabError } from "../util/errors.js";
import { createRandom, shuffleWithSeed } from "../util/random.js";
import type { LesionLabel, LesionRecord } from "./types.js";

/** Thrown for generator options out of range (the message names the option, value and range). */
export class SyntheticDataOptionError extends MelanomaLabError {}

/** Options of {@link generateSyntheticDataset}. */
export interface SyntheticDatasetOptions {
  /** Folder that receives `labels.csv` and `images/` (created if missing). */
  outDir: string;
  /** Number of images (not lesions) to write; at least 4. */
  imageCount: number;
  /** Width = height of each JPEG, in pixels (32–1024). Default 224. */
  imageSizePx?: number;
  /** Same seed → byte-identical labels.csv and images. */
  seed: number;
  /** Fraction of lesions whose written label is flipped (0–0.5). Default 0.05. */
  labelNoiseFraction?: number;
  /** Fraction of lesions that are truly malignant (0.05–0.95). Default 0.5. */
  malignantFraction?: number;
  /** Fraction of lesions photographed twice (a second view: rotated, shifted, re-lit). Default 0.2. */
  twoImageLesionFraction?: number;
  /** JPEG quality 1–100. Default 90. */
  jpegQuality?: number;
}

/**
 * The synthetic "clinics" an image can come from (written as `ham_dataset` in labels.csv, read as
 * `source`): each photographs with its own colour cast and brightness, as real dermoscopes and
 * clinics differ. A lesion's clinic is drawn from the seed independently of its label, so on this
 * data the source carries no label signal (on HAM10000 it does: compare the source lesson in
 * notebook 4).
 */
export const SYNTHETIC_SOURCES: readonly { name: string; channelGain: readonly [number, number, number] }[] = [
  { name: "synth_clinic_a", channelGain: [1, 1, 1] },
  // Warm, tungsten-like light.
  { name: "synth_clinic_b", channelGain: [1.07, 1.0, 0.88] },
  // Cool and a little dim (an older polarised dermoscope).
  { name: "synth_clinic_c", channelGain: [0.9, 0.95, 1.04] },
];

/** What {@link generateSyntheticDataset} wrote. */
export interface SyntheticDatasetResult {
  labelsCsvPath: string;
  records: LesionRecord[];
  lesionCount: number;
  /** Lesions whose written label differs from the true class (label noise). */
  flippedLesionCount: number;
  durationMs: number;
}

/** Skin tones from very light to dark (roughly Fitzpatrick I–VI), sRGB. */
const SKIN_TONES: readonly [number, number, number][] = [
  [243, 212, 195],
  [234, 192, 168],
  [218, 170, 136],
  [193, 142, 104],
  [152, 106, 76],
  [103, 70, 52],
];

/** Colours a variegated lesion mixes in: black, dark brown, blue-grey veil, red, white regression. */
const VARIEGATION_COLOURS: readonly [number, number, number][] = [
  [38, 28, 28],
  [72, 44, 30],
  [92, 104, 128],
  [176, 78, 80],
  [214, 200, 198],
];

interface LesionParams {
  trueLabel: LesionLabel;
  writtenLabel: LesionLabel;
  /** The four ABCD-like cues in [0, 1]. */
  asymmetry: number;
  borderIrregularity: number;
  colourVariegation: number;
  diameter: number;
  skin: [number, number, number];
  /** Harmonic amplitudes/phases of the outline r(θ). */
  harmonics: { k: number; amplitude: number; phase: number }[];
  aspect: number;
  radiusFraction: number;
  edgeWidthPx: number;
  baseColour: [number, number, number];
  blobs: { dx: number; dy: number; sigma: number; weight: number; colour: [number, number, number] }[];
  networkStrength: number;
  ageYears: number;
  sex: string;
  site: string;
}

const SITES = ["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest", "scalp"];

function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** Mixes two 32-bit seeds into one, so image i of seed s never shares a stream with another (s, i). */
function deriveSeed(seed: number, index: number, salt: number): number {
  let h = (Math.floor(seed) ^ Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(salt + 7, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function drawLesion(trueLabel: LesionLabel, writtenLabel: LesionLabel, rand: () => number): LesionParams {
  // One latent "malignancy" per lesion drives all four cues, each with its own noise, so the
  // classes overlap (a benign lesion can be large or variegated; a melanoma can be small and round).
  const latent = clamp01((trueLabel === "malignant" ? 0.66 : 0.34) + 0.15 * gaussian(rand));
  const cue = () => clamp01(latent + 0.12 * gaussian(rand));
  const asymmetry = cue();
  const borderIrregularity = cue();
  const colourVariegation = cue();
  const diameter = cue();
  const tone = SKIN_TONES[Math.floor(rand() * SKIN_TONES.length)];
  const skin: [number, number, number] = [0, 1, 2].map((c) => tone[c] * (0.94 + 0.12 * rand())) as [number, number, number];
  const harmonics: LesionParams["harmonics"] = [];
  // Odd low harmonics break point symmetry (A); high harmonics make the border ragged (B).
  harmonics.push({ k: 1, amplitude: 0.16 * asymmetry * rand(), phase: 2 * Math.PI * rand() });
  harmonics.push({ k: 3, amplitude: 0.14 * asymmetry * (0.4 + 0.6 * rand()), phase: 2 * Math.PI * rand() });
  harmonics.push({ k: 2, amplitude: 0.05 * rand(), phase: 2 * Math.PI * rand() });
  for (let k = 5; k <= 14; k++) {
    harmonics.push({ k, amplitude: (0.09 * borderIrregularity * borderIrregularity * (0.3 + rand())) / Math.sqrt(k - 3), phase: 2 * Math.PI * rand() });
  }
  // Lesion colour: a brown darker than the skin; darker skins get darker lesions.
  const darkness = 0.45 + 0.25 * rand();
  const brown = [120 + 40 * rand(), 78 + 25 * rand(), 50 + 20 * rand()];
  const baseColour = [0, 1, 2].map((c) => (skin[c] * 0.35 + brown[c] * 0.65) * (1 - darkness * 0.7)) as [number, number, number];
  const blobCount = 1 + Math.round(colourVariegation * 5 * rand() + colourVariegation * 2);
  const blobs: LesionParams["blobs"] = [];
  for (let b = 0; b < blobCount; b++) {
    // Benign lesions mostly shade within browns; variegated ones draw from the full palette.
    const paletteSize = colourVariegation > 0.45 ? VARIEGATION_COLOURS.length : 2;
    const colour = VARIEGATION_COLOURS[Math.floor(rand() * paletteSize)];
    const radial = 0.65 * Math.sqrt(rand());
    const angle = 2 * Math.PI * rand();
    blobs.push({
      dx: radial * Math.cos(angle),
      dy: radial * Math.sin(angle),
      sigma: 0.18 + 0.3 * rand(),
      weight: (0.15 + 0.75 * colourVariegation) * (0.5 + 0.5 * rand()),
      colour,
    });
  }
  return {
    trueLabel,
    writtenLabel,
    asymmetry,
    borderIrregularity,
    colourVariegation,
    diameter,
    skin,
    harmonics,
    aspect: 0.75 + 0.25 * rand(),
    radiusFraction: 0.13 + 0.17 * diameter + 0.02 * gaussian(rand),
    edgeWidthPx: 0.5 + 1.2 * rand() + 1.8 * borderIrregularity * rand(),
    baseColour,
    blobs,
    networkStrength: 0.05 + 0.12 * rand(),
    // Rounded to 5 years and clamped to 20–90 (the age bands HAM10000 records).
    ageYears: Math.max(20, Math.min(90, Math.round(((trueLabel === "malignant" ? 60 : 45) + 14 * gaussian(rand)) / 5) * 5)),
    sex: rand() < 0.5 ? "female" : "male",
    site: SITES[Math.floor(rand() * SITES.length)],
  };
}

/**
 * Renders one dermoscopy-like image of `lesion` as RGB bytes (HWC). The view (rotation, offset,
 * zoom, lighting, hair, ruler, vignette, sensor noise) comes from `rand`, so two views of a lesion
 * differ while its cues stay the same.
 */
function renderLesionImage(lesion: LesionParams, sizePx: number, rand: () => number, channelGain: readonly [number, number, number]): Uint8Array {
  const S = sizePx;
  const rgb = new Float32Array(S * S * 3);
  const rotation = 2 * Math.PI * rand();
  const zoom = 0.9 + 0.2 * rand();
  const cx = S / 2 + S * 0.06 * gaussian(rand);
  const cy = S / 2 + S * 0.06 * gaussian(rand);
  const radiusPx = Math.max(S * 0.06, lesion.radiusFraction * S * zoom);
  const light = 0.92 + 0.16 * rand();

  // Outline r(θ) tabulated once per image (rotation applied), 720 bins.
  const bins = 720;
  const outline = new Float32Array(bins);
  for (let i = 0; i < bins; i++) {
    const theta = (2 * Math.PI * i) / bins - rotation;
    let r = 1;
    for (const h of lesion.harmonics) r += h.amplitude * Math.cos(h.k * theta + h.phase);
    // Elliptic elongation: (cos/1, sin/aspect) radius.
    const ellipse = 1 / Math.sqrt(Math.cos(theta) ** 2 + (Math.sin(theta) / lesion.aspect) ** 2);
    outline[i] = Math.max(0.25, r) * ellipse * radiusPx;
  }
  const cosR = Math.cos(rotation);
  const sinR = Math.sin(rotation);
  const blobs = lesion.blobs.map((b) => ({
    x: cx + radiusPx * (b.dx * cosR - b.dy * sinR),
    y: cy + radiusPx * (b.dx * sinR + b.dy * cosR),
    inv2s2: 1 / (2 * (b.sigma * radiusPx) ** 2),
    weight: b.weight,
    colour: b.colour,
  }));
  // Skin texture: a few smooth waves plus fine noise.
  const waves = Array.from({ length: 3 }, () => ({ fx: (rand() - 0.5) * 0.08, fy: (rand() - 0.5) * 0.08, phase: 2 * Math.PI * rand(), amp: 0.03 * rand() }));
  const netPeriod = 5 + 4 * rand();
  const netPhase = rand() * 6;
  let maxOutline = 0;
  for (let i = 0; i < bins; i++) maxOutline = Math.max(maxOutline, outline[i]);
  // Beyond this distance alpha < 0.001: skip the lesion maths for plain skin.
  const maxReach = maxOutline + 7 * lesion.edgeWidthPx;
  const maxReach2 = maxReach * maxReach;
  const base = lesion.baseColour;
  const skin = lesion.skin;
  // Per-column and per-row tables: the waves by sin(a + b) = sin a·cos b + cos a·sin b, the
  // network's two sines, and each blob's Gaussian as exp(-ex²k)·exp(-ey²k). The pixel loop then
  // only multiplies: it was ~9 ms of sin/exp per 224-px image, the bulk of the demo's data step.
  const waveCount = waves.length;
  const waveSinX = new Float64Array(waveCount * S);
  const waveCosX = new Float64Array(waveCount * S);
  const waveSinY = new Float64Array(waveCount * S);
  const waveCosY = new Float64Array(waveCount * S);
  for (let w = 0; w < waveCount; w++) {
    const { fx, fy, phase, amp } = waves[w];
    for (let i = 0; i < S; i++) {
      waveSinX[w * S + i] = amp * Math.sin(fx * i);
      waveCosX[w * S + i] = amp * Math.cos(fx * i);
      waveSinY[w * S + i] = Math.sin(fy * i + phase);
      waveCosY[w * S + i] = Math.cos(fy * i + phase);
    }
  }
  const netX = new Float64Array(S);
  const netY = new Float64Array(S);
  for (let i = 0; i < S; i++) {
    netX[i] = Math.sin(i / netPeriod + netPhase);
    netY[i] = Math.sin(i / netPeriod);
  }
  const blobCount = blobs.length;
  const blobExponentX = new Float64Array(blobCount * S);
  const blobExponentY = new Float64Array(blobCount * S);
  const blobGaussX = new Float64Array(blobCount * S);
  const blobGaussY = new Float64Array(blobCount * S);
  for (let k = 0; k < blobCount; k++) {
    const blob = blobs[k];
    for (let i = 0; i < S; i++) {
      const ex = i - blob.x;
      const ey = i - blob.y;
      blobExponentX[k * S + i] = ex * ex * blob.inv2s2;
      blobExponentY[k * S + i] = ey * ey * blob.inv2s2;
      blobGaussX[k * S + i] = blob.weight * Math.exp(-blobExponentX[k * S + i]);
      blobGaussY[k * S + i] = Math.exp(-blobExponentY[k * S + i]);
    }
  }
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      let shade = light;
      for (let w = 0; w < waveCount; w++) {
        shade += waveSinX[w * S + x] * waveCosY[w * S + y] + waveCosX[w * S + x] * waveSinY[w * S + y];
      }
      let r = skin[0] * shade;
      let g = skin[1] * shade;
      let b = skin[2] * shade;
      const dx = x - cx;
      const dy = y - cy;
      const dist2 = dx * dx + dy * dy;
      if (dist2 < maxReach2) {
        const dist = Math.sqrt(dist2);
        let angle = Math.atan2(dy, dx);
        if (angle < 0) angle += 2 * Math.PI;
        const edge = outline[Math.floor((angle / (2 * Math.PI)) * bins) % bins];
        const alpha = 1 / (1 + Math.exp((dist - edge) / lesion.edgeWidthPx));
        if (alpha > 0.002) {
          let lr = base[0];
          let lg = base[1];
          let lb = base[2];
          for (let k = 0; k < blobCount; k++) {
            if (blobExponentX[k * S + x] + blobExponentY[k * S + y] > 7) continue;
            const wgt = blobGaussX[k * S + x] * blobGaussY[k * S + y];
            const colour = blobs[k].colour;
            lr += wgt * (colour[0] - lr);
            lg += wgt * (colour[1] - lg);
            lb += wgt * (colour[2] - lb);
          }
          // Pigment network: a faint lattice inside the lesion.
          const net = 1 - lesion.networkStrength * (0.5 + 0.5 * netX[x] * netY[y]);
          r = r * (1 - alpha) + lr * net * light * alpha;
          g = g * (1 - alpha) + lg * net * light * alpha;
          b = b * (1 - alpha) + lb * net * light * alpha;
        }
      }
      const o = (y * S + x) * 3;
      rgb[o] = r;
      rgb[o + 1] = g;
      rgb[o + 2] = b;
    }
  }
  drawHairs(rgb, S, rand);
  if (rand() < 0.3) drawRuler(rgb, S, rand);
  applyVignette(rgb, S, rand);
  // The clinic's colour cast; it draws no random numbers, so the rest of the image is unchanged.
  for (let i = 0; i < rgb.length; i += 3) {
    rgb[i] *= channelGain[0];
    rgb[i + 1] *= channelGain[1];
    rgb[i + 2] *= channelGain[2];
  }
  const out = new Uint8Array(S * S * 3);
  // Sensor noise: a seeded table of Gaussian draws walked with a random odd stride (a Gaussian draw
  // per byte costs more than rendering the whole image).
  const noise = 2 + 4 * rand();
  const table = new Float32Array(4096);
  for (let i = 0; i < table.length; i++) table[i] = noise * gaussian(rand);
  const stride = 1 + 2 * Math.floor(rand() * 1000);
  let cursor = Math.floor(rand() * 4096);
  for (let i = 0; i < out.length; i++) {
    cursor = (cursor + stride) & 4095;
    const v = rgb[i] + table[cursor] + table[(i * 7 + cursor) & 4095];
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

/** Dark, thin, slightly curved hair strands (quadratic Bézier curves), anti-aliased by distance. */
function drawHairs(rgb: Float32Array, S: number, rand: () => number): void {
  const count = Math.floor(rand() * rand() * 9);
  for (let h = 0; h < count; h++) {
    const p0 = [rand() * S, rand() * S];
    const p2 = [rand() * S, rand() * S];
    const p1 = [(p0[0] + p2[0]) / 2 + (rand() - 0.5) * S * 0.4, (p0[1] + p2[1]) / 2 + (rand() - 0.5) * S * 0.4];
    const halfWidth = 0.5 + rand() * 0.9 * (S / 224);
    const colour = [30 + 30 * rand(), 20 + 20 * rand(), 15 + 15 * rand()];
    const steps = Math.ceil(S * 1.5);
    for (let s = 0; s <= steps; s++) {
      const t = s / steps;
      const u = 1 - t;
      const px = u * u * p0[0] + 2 * u * t * p1[0] + t * t * p2[0];
      const py = u * u * p0[1] + 2 * u * t * p1[1] + t * t * p2[1];
      const reach = Math.ceil(halfWidth + 1);
      for (let yy = Math.floor(py) - reach; yy <= Math.floor(py) + reach; yy++) {
        if (yy < 0 || yy >= S) continue;
        for (let xx = Math.floor(px) - reach; xx <= Math.floor(px) + reach; xx++) {
          if (xx < 0 || xx >= S) continue;
          const d = Math.hypot(xx - px, yy - py);
          const cover = Math.min(1, Math.max(0, halfWidth + 0.5 - d)) * 0.5;
          if (cover <= 0) continue;
          const o = (yy * S + xx) * 3;
          for (let c = 0; c < 3; c++) rgb[o + c] += cover * (colour[c] - rgb[o + c]);
        }
      }
    }
  }
}

/** Ruler tick marks along one edge, as on dermoscopy images taken with a scale. */
function drawRuler(rgb: Float32Array, S: number, rand: () => number): void {
  const horizontal = rand() < 0.5;
  const offset = Math.floor(S * (0.04 + 0.05 * rand()));
  const spacing = Math.max(3, Math.round(S * (0.025 + 0.015 * rand())));
  for (let t = Math.floor(spacing / 2); t < S; t += spacing) {
    const tickIndex = Math.floor(t / spacing);
    const length = tickIndex % 5 === 0 ? S * 0.06 : S * 0.03;
    for (let l = 0; l < length; l++) {
      const x = horizontal ? t : offset + l;
      const y = horizontal ? offset + l : t;
      if (x >= S || y >= S) continue;
      const o = (y * S + x) * 3;
      for (let c = 0; c < 3; c++) rgb[o + c] = rgb[o + c] * 0.25 + 20;
    }
  }
}

/** Darkened corners, and sometimes the black circle of a contact dermoscope's field of view. */
function applyVignette(rgb: Float32Array, S: number, rand: () => number): void {
  const strength = 0.15 + 0.3 * rand();
  const circle = rand() < 0.35;
  const circleRadius = S * (0.5 + 0.2 * rand());
  const c = S / 2;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const d2 = (x - c) * (x - c) + (y - c) * (y - c);
      let factor = 1 - (strength * d2) / (S * S * 0.5);
      if (circle) {
        const over = Math.sqrt(d2) - circleRadius;
        if (over > -12) factor *= 1 / (1 + Math.exp(over / 2));
      }
      const o = (y * S + x) * 3;
      rgb[o] *= factor;
      rgb[o + 1] *= factor;
      rgb[o + 2] *= factor;
    }
  }
}

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!(Number.isFinite(value) && value >= min && value <= max)) {
    throw new SyntheticDataOptionError(`${name} must be a number in ${min}–${max}; received ${value}`);
  }
}

/**
 * Writes a seeded synthetic dermoscopy dataset: `outDir/labels.csv` and `outDir/images/SYN_#######.jpg`,
 * the same layout as ../shared/data/ham10000-dev, so {@link loadDataset} reads it.
 *
 * What is drawn: a pigmented lesion on a skin-toned background (six tones, light to dark) with a
 * faint pigment network, plus distractors that carry no class signal: 0–8 hair strands, ruler
 * ticks on ~30% of images, vignetting and on ~35% a dermoscope's black circular field, lighting and
 * sensor noise.
 *
 * Class cues (ABCD rule): each lesion has a latent malignancy score in [0, 1], drawn around 0.66
 * for malignant and 0.34 for benign (sd 0.15), and four cues = latent + independent noise (sd 0.12):
 * - A, asymmetry: amplitude of odd outline harmonics (k = 1, 3);
 * - B, border irregularity: amplitude of high outline harmonics (k = 5–14) and edge blur;
 * - C, colour variegation: number/weight of colour blobs; above 0.45 they include black,
 *   blue-grey, red and white-regression colours, below only browns;
 * - D, diameter: lesion radius 13–30% of the image side.
 * Age is older for malignant (mean 60 vs 45 years). So the classes overlap: the latent score alone
 * separates them with AUC ≈ 0.93 before label noise; the sum of the four cues reaches ≈ 0.89 against
 * the written (noisy) labels. Measured on 400 images at 224 px, seed 42: frozen ImageNet MobileNet v1
 * (alpha 1.0) pooled features + logistic regression, 5-fold lesion-grouped CV → AUC 0.85; a
 * hand-made "dark area in the centre" feature → AUC ≈ 0.65–0.7.
 *
 * Label noise: `labelNoiseFraction` of the lesions (chosen by the seed) have their written label
 * flipped; `clean_label` in labels.csv keeps the true class, and the `cue_*` columns the cue
 * values, for analysis only (loaders ignore them).
 *
 * Sources: each lesion comes from one of three synthetic clinics ({@link SYNTHETIC_SOURCES}, column
 * `ham_dataset`), drawn from the seed independently of the label; each clinic has its own colour
 * cast, so the source is visible in the pixels but says nothing about the label.
 *
 * Lesions: `twoImageLesionFraction` of lesions get a second image (another rotation, offset,
 * zoom, hair and lighting), sharing `lesion_id`, so lesion-grouped splits matter.
 *
 * Deterministic: the same options give byte-identical files (each image has its own derived
 * random stream; JPEG encoding by sharp is deterministic).
 *
 * @example await generateSyntheticDataset({ outDir: "data/synthetic", imageCount: 400, imageSizePx: 224, seed: 42, labelNoiseFraction: 0.05 });
 */
export async function generateSyntheticDataset(options: SyntheticDatasetOptions): Promise<SyntheticDatasetResult> {
  const started = Date.now();
  const imageSizePx = options.imageSizePx ?? 224;
  const labelNoiseFraction = options.labelNoiseFraction ?? 0.05;
  const malignantFraction = options.malignantFraction ?? 0.5;
  const twoImageFraction = options.twoImageLesionFraction ?? 0.2;
  const jpegQuality = options.jpegQuality ?? 90;
  checkRange("imageCount", options.imageCount, 4, 1_000_000);
  if (!Number.isInteger(options.imageCount)) throw new SyntheticDataOptionError(`imageCount must be an integer; received ${options.imageCount}`);
  checkRange("imageSizePx", imageSizePx, 32, 1024);
  checkRange("labelNoiseFraction", labelNoiseFraction, 0, 0.5);
  checkRange("malignantFraction", malignantFraction, 0.05, 0.95);
  checkRange("twoImageLesionFraction", twoImageFraction, 0, 1);
  checkRange("jpegQuality", jpegQuality, 1, 100);
  checkRange("seed", options.seed, -(2 ** 31), 2 ** 32);

  const seed = options.seed;
  // Lesion count so that lesions + second views = imageCount.
  const lesionCount = Math.max(2, Math.round(options.imageCount / (1 + twoImageFraction)));
  const secondViews = options.imageCount - lesionCount;
  const lesionOrder = shuffleWithSeed(Array.from({ length: lesionCount }, (_, i) => i), deriveSeed(seed, 0, 1));
  const malignantCount = Math.round(lesionCount * malignantFraction);
  const trueLabels: LesionLabel[] = new Array(lesionCount);
  lesionOrder.forEach((lesion, rank) => (trueLabels[lesion] = rank < malignantCount ? "malignant" : "benign"));
  const flipOrder = shuffleWithSeed(Array.from({ length: lesionCount }, (_, i) => i), deriveSeed(seed, 0, 2));
  const flipped = new Set(flipOrder.slice(0, Math.round(lesionCount * labelNoiseFraction)));
  const twoViewLesions = new Set(shuffleWithSeed(Array.from({ length: lesionCount }, (_, i) => i), deriveSeed(seed, 0, 3)).slice(0, secondViews));
  // Its own stream, so adding sources left labels, flips, second views and lesion shapes as they were.
  const pickSource = createRandom(deriveSeed(seed, 0, 4));
  const lesionSources = Array.from({ length: lesionCount }, () => SYNTHETIC_SOURCES[Math.floor(pickSource() * SYNTHETIC_SOURCES.length)]);

  const outDir = path.resolve(options.outDir);
  const imagesDir = path.join(outDir, "images");
  await fs.promises.mkdir(imagesDir, { recursive: true });

  const rows: string[] = [
    "image_id,label,diagnosis,lesion_id,age,sex,localization,ham_dataset,clean_label,cue_asymmetry,cue_border_irregularity,cue_colour_variegation,cue_diameter",
  ];
  const records: LesionRecord[] = [];
  const pending = new Set<Promise<void>>();
  let imageNumber = 0;
  for (let l = 0; l < lesionCount; l++) {
    const trueLabel = trueLabels[l];
    const writtenLabel: LesionLabel = flipped.has(l) ? (trueLabel === "malignant" ? "benign" : "malignant") : trueLabel;
    const lesion = drawLesion(trueLabel, writtenLabel, createRandom(deriveSeed(seed, l, 10)));
    const lesionId = `SYNL_${String(l + 1).padStart(6, "0")}`;
    const views = twoViewLesions.has(l) ? 2 : 1;
    for (let v = 0; v < views; v++) {
      imageNumber++;
      const imageId = `SYN_${String(imageNumber).padStart(7, "0")}`;
      const imagePath = path.join(imagesDir, `${imageId}.jpg`);
      const pixels = renderLesionImage(lesion, imageSizePx, createRandom(deriveSeed(seed, imageNumber, 20)), lesionSources[l].channelGain);
      const write = sharp(pixels, { raw: { width: imageSizePx, height: imageSizePx, channels: 3 } })
        .jpeg({ quality: jpegQuality, chromaSubsampling: "4:4:4" })
        .toBuffer()
        .then((jpeg) => writeFileAtomically(imagePath, jpeg));
      pending.add(write);
      void write.finally(() => pending.delete(write));
      // Bounded: rendering is synchronous JS; a few encodes in flight keep sharp's threads busy.
      if (pending.size >= 4) await Promise.race(pending);
      const diagnosis = writtenLabel === "malignant" ? "mel" : "nv";
      rows.push(
        [imageId, writtenLabel, diagnosis, lesionId, lesion.ageYears, lesion.sex, lesion.site, lesionSources[l].name, trueLabel,
          lesion.asymmetry.toFixed(3), lesion.borderIrregularity.toFixed(3), lesion.colourVariegation.toFixed(3), lesion.diameter.toFixed(3)].join(","),
      );
      records.push({ imageId, imagePath, label: writtenLabel, diagnosis, lesionId, ageYears: lesion.ageYears, sex: lesion.sex, site: lesion.site, source: lesionSources[l].name });
    }
  }
  await Promise.all(pending);
  const labelsCsvPath = path.join(outDir, "labels.csv");
  await writeFileAtomically(labelsCsvPath, rows.join("\n") + "\n");
  return { labelsCsvPath, records, lesionCount, flippedLesionCount: flipped.size, durationMs: Date.now() - started };
}

/**
 * Writes under a temporary name, then renames: a reader never sees half a file, and two
 * generators writing the same folder at once (the demo prepares the data while notebook 1 may
 * also ask for it) leave the same bytes as one would. labels.csv is written last, so once it is
 * there every image it lists is complete.
 */
async function writeFileAtomically(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${file}.${process.pid}.${crypto.randomUUID()}.tmp`;
  await fs.promises.writeFile(tmp, data);
  await fs.promises.rename(tmp, file);
}

/**
 * Whether `dataDir` holds synthetic data written by this version of the generator (its labels.csv
 * has the `ham_dataset` source column, added with the synthetic clinics). Older copies are
 * regenerated by prepareDataset rather than shown with one "unknown" source.
 *
 * @example if (!isSyntheticDatasetCurrent("data/synthetic")) await generateSyntheticDataset({ ... });
 */
export function isSyntheticDatasetCurrent(dataDir: string): boolean {
  const csvPath = path.join(dataDir, "labels.csv");
  if (!fs.existsSync(csvPath)) return false;
  const fd = fs.openSync(csvPath, "r");
  try {
    const head = Buffer.alloc(512);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).toString("utf8").split(/\r?\n/)[0].split(",").includes("ham_dataset");
  } finally {
    fs.closeSync(fd);
  }
}
