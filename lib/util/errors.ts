/**
 * Base class of every error melanoma-lab throws on purpose. Messages name the file or field,
 * the value received and what was expected, so a user can fix the input without reading code.
 *
 * @example
 * try { selectBackend("gpu") } catch (e) { if (e instanceof MelanomaLabError) console.log(e.message) }
 */
export class MelanomaLabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A name (backend, backbone, label, column, …) that is not one of the valid options.
 * The message lists the valid names and the nearest one to what was received.
 */
export class UnknownNameError extends MelanomaLabError {
  readonly received: string;
  readonly validNames: readonly string[];
  constructor(kind: string, received: string, validNames: readonly string[]) {
    const nearest = findNearestName(received, validNames);
    super(
      `unknown ${kind} ${JSON.stringify(received)}: expected one of ${validNames.map((n) => JSON.stringify(n)).join(", ")}` +
        (nearest ? ` (did you mean ${JSON.stringify(nearest)}?)` : ""),
    );
    this.received = received;
    this.validNames = validNames;
  }
}

/**
 * The valid name closest to `received` by edit distance, or undefined when none is close
 * (distance more than half the longer name).
 *
 * @example findNearestName("mobilenetv2", ["mobilenet_v2", "vgg16"]) // "mobilenet_v2"
 */
export function findNearestName(received: string, validNames: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of validNames) {
    const d = editDistance(received.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = name;
    }
  }
  if (best === undefined) return undefined;
  return bestDistance <= Math.max(received.length, best.length) / 2 ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diagonal = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return prev[b.length];
}
