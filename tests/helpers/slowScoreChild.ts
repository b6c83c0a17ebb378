// Child process of the kill -9 test (tests/triage/scoreImages.test.ts): `npm run score`'s
// scoreImagesToCsv with a pause after each written batch, so that the parent can kill it while
// it is part way through. Usage: tsx tests/helpers/slowScoreChild.ts <model> <input> <out> <pause-ms>
import { scoreImagesToCsv, selectBackend } from "../../lib/index.js";

async function main(): Promise<void> {
  const [modelDir, input, outPath, pauseMs] = process.argv.slice(2);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  await selectBackend();
  await scoreImagesToCsv({
    modelDir,
    input,
    outPath,
    batchSize: 2,
    // onProgress runs after each batch is written and fsync'd; a synchronous pause keeps it simple.
    onProgress: () => void Atomics.wait(sleeper, 0, 0, Number(pauseMs)),
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
