import fs from "node:fs";
import path from "node:path";

/** File extensions accepted as images (lower case, with the dot). */
export const IMAGE_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".png"];

/**
 * Maps image ids to files by listing `folders` once (no per-image stat): an id matches
 * `<id>.jpg|.jpeg|.png` in any case, or the exact file name when the id already has an extension.
 * The first folder that has an id wins.
 *
 * @example const find = createImageFinder(["/data/images"]); find("ISIC_0024307") // "/data/images/ISIC_0024307.jpg"
 */
export function createImageFinder(folders: readonly string[]): (imageId: string) => string | undefined {
  const byStem = new Map<string, string>();
  const byName = new Map<string, string>();
  for (const folder of folders) {
    let names: string[];
    try {
      names = fs.readdirSync(folder);
    } catch {
      continue;
    }
    names.sort();
    for (const name of names) {
      const ext = path.extname(name).toLowerCase();
      const full = path.resolve(folder, name);
      if (!byName.has(name)) byName.set(name, full);
      if (!IMAGE_EXTENSIONS.includes(ext)) continue;
      const stem = name.slice(0, -ext.length);
      if (!byStem.has(stem)) byStem.set(stem, full);
    }
  }
  return (imageId: string) => byStem.get(imageId) ?? byName.get(imageId);
}
