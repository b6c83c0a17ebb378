/** Binary label used throughout: malignant is the positive class (probability of malignant). */
export type LesionLabel = "benign" | "malignant";

/** The two labels, index 0 = benign, 1 = malignant (the model's output order). */
export const LESION_LABELS: readonly LesionLabel[] = ["benign", "malignant"] as const;

/**
 * One image and what is known about it, the same for every dataset layout.
 *
 * @example { imageId: "ISIC_0024307", imagePath: "/data/images/ISIC_0024307.jpg", label: "benign", lesionId: "HAM_0003577" }
 */
export interface LesionRecord {
  imageId: string;
  /** Absolute path of the image file. */
  imagePath: string;
  label: LesionLabel;
  /** Fine-grained diagnosis when known (mel, nv, bcc, …). */
  diagnosis?: string;
  lesionId?: string;
  patientId?: string;
  ageYears?: number;
  sex?: string;
  site?: string;
  /** Clinic/device/archive the image came from (HAM10000's `ham_dataset`). */
  source?: string;
  /** Split the dataset's own layout put the image in (folder-per-class `train/`, `valid/`, `test/`). */
  predefinedSplit?: "train" | "validation" | "test";
}

/**
 * A problem with one input (file, row or field), kept so a batch can go on and list what it
 * skipped at the end.
 */
export interface InputProblem {
  /** File (and row, for CSV) the problem is in. */
  file: string;
  row?: number;
  field?: string;
  /** What was wrong: received value and what was expected. */
  reason: string;
}
