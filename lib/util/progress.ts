/** Where a progress bar writes: process.stdout or anything with the same few members. */
export interface ProgressStream {
  write(text: string): unknown;
  /** True on a terminal: the bar redraws one line; otherwise it prints plain lines. */
  isTTY?: boolean;
  /** Terminal width in characters. */
  columns?: number;
}

/** Options of {@link createProgressBar}. */
export interface ProgressBarOptions {
  /** Default process.stdout. */
  stream?: ProgressStream;
  /** Plain-line mode: print at every `stepPercent` and at the end. Default 10. */
  stepPercent?: number;
  /**
   * Plain-line mode: also print when this many seconds passed since the last line and the
   * count moved, so a slow stretch (InceptionV3 after a cached MobileNetV2) is never silent
   * for long. Default 30.
   */
  maxSilentSeconds?: number;
  /** TTY mode: redraw at most this often (the last update always draws). Default 100 ms. */
  minRedrawMs?: number;
  /** Milliseconds clock (tests pin it). Default Date.now. */
  nowMs?: () => number;
}

/**
 * "1m05s", "42s", "1h02m" for a duration in seconds ("?" when not finite).
 *
 * @example formatDurationSeconds(65) // "1m05s"
 */
export function formatDurationSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * A progress callback `(done, total)` with rate and ETA. On a terminal it redraws one line
 * (`label [#####-----]  50% 999/1998 11.2/s ETA 1m29s`; `label (detail) …` when the caller names
 * the pass running, e.g. the ensemble member) and ends it with a newline when done;
 * elsewhere (CI logs, pipes, notebooks) it prints a plain line every `stepPercent`, and after at
 * most `maxSilentSeconds` without one (and when a new pass starts), so logs stay short but never
 * go quiet for minutes.
 * The one progress display of the project (scripts, experiments, notebooks).
 *
 * @example await extractFeatures(backbone, records, { onProgress: createProgressBar("features") })
 */
export function createProgressBar(
  label: string,
  options: ProgressBarOptions = {},
): (done: number, total: number, detail?: string) => void {
  const stream = options.stream ?? process.stdout;
  const now = options.nowMs ?? Date.now;
  const stepPercent = options.stepPercent ?? 10;
  const minRedrawMs = options.minRedrawMs ?? 100;
  const maxSilentMs = (options.maxSilentSeconds ?? 30) * 1000;
  const started = now();
  let lastDrawMs = -Infinity;
  let lastDone = -1;
  let lastDetail: string | undefined;
  let nextPercent = 0;
  let finished = false;
  return (done, total, detail) => {
    if (finished) return;
    // The pass running now (an ensemble member, a view) goes beside the label: "a+b features (b)".
    const title = detail ? `${label} (${detail})` : label;
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const elapsedSeconds = (now() - started) / 1000;
    const rate = elapsedSeconds > 0 ? done / elapsedSeconds : 0;
    const etaSeconds = rate > 0 ? (total - done) / rate : NaN;
    const isDone = done >= total;
    const stats =
      `${String(Math.floor(fraction * 100)).padStart(3)}% ${done}/${total} ${rate.toFixed(1)}/s ` +
      (isDone ? `in ${formatDurationSeconds(elapsedSeconds)}` : `ETA ${formatDurationSeconds(etaSeconds)}`);
    if (stream.isTTY) {
      if (!isDone && now() - lastDrawMs < minRedrawMs) return;
      lastDrawMs = now();
      const width = Math.max(10, Math.min(30, (stream.columns ?? 80) - title.length - stats.length - 5));
      const filled = Math.round(fraction * width);
      // \x1b[K clears what a longer previous line left behind.
      stream.write(
        `\r${title} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${stats}\x1b[K${isDone ? "\n" : ""}`,
      );
    } else {
      const percent = fraction * 100;
      const silentTooLong = done !== lastDone && now() - lastDrawMs >= maxSilentMs;
      const newPass = detail !== lastDetail;
      if (!isDone && percent < nextPercent && !silentTooLong && !newPass) return;
      while (nextPercent <= percent) nextPercent += stepPercent;
      lastDrawMs = now();
      lastDone = done;
      lastDetail = detail;
      stream.write(`${title}: ${stats}\n`);
    }
    if (isDone) finished = true;
  };
}
