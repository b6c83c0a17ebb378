// The progress bar lives in lib/util/progress.ts (the lowest stage that needs it); this path
// stays for the modules that import it from here.
export { createProgressBar, formatDurationSeconds } from "../util/progress.js";
export type { ProgressStream, ProgressBarOptions } from "../util/progress.js";
