import { spawn } from "node:child_process";
import net from "node:net";

/** A classic Jupyter Notebook server started by {@link startClassicNotebook}. */
export interface ClassicNotebookServer {
  port: number;
  /** URL of a notebook below the server's notebook folder, with the token. */
  urlOf(notebookRelativePath: string): string;
  /** What the server printed so far. */
  log(): string;
  /** Stops the server and waits for it to exit. */
  stop(): Promise<void>;
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Polls `condition` every 200 ms until it holds; after `timeoutMs` throws with the tail of
 * `describe()` (a log), so a test that waits on a process says what that process printed.
 *
 * @example await waitFor(() => log.includes("ready"), 30_000, () => log)
 */
async function waitFor(condition: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms; log so far:\n${describe().slice(-2000)}`);
    await new Promise<void>((r) => setTimeout(r, 200));
  }
}

/**
 * Starts classic Notebook (`python -m notebook`) on 127.0.0.1 at a free port with `token`,
 * serving `notebookDir` with `env`, and waits until it says it is running (the server is
 * stopped again if it never does).
 *
 * @example const server = await startClassicNotebook({ python: "/usr/bin/python3", notebookDir, env, token: "t" });
 */
export async function startClassicNotebook(options: {
  python: string;
  notebookDir: string;
  env: NodeJS.ProcessEnv;
  token: string;
  readyTimeoutMs?: number;
}): Promise<ClassicNotebookServer> {
  const port = await findFreePort();
  const server = spawn(
    options.python,
    [
      "-m",
      "notebook",
      "--allow-root",
      "--no-browser",
      "--ip=127.0.0.1",
      `--port=${port}`,
      `--NotebookApp.token=${options.token}`,
      `--notebook-dir=${options.notebookDir}`,
    ],
    { env: options.env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let serverLog = "";
  server.stdout.on("data", (d) => (serverLog += d));
  server.stderr.on("data", (d) => (serverLog += d));
  const stop = async () => {
    server.kill("SIGTERM");
    await new Promise((resolve) => (server.exitCode !== null ? resolve(null) : server.once("exit", resolve)));
  };
  try {
    await waitFor(
      () => /is running at|http:\/\/127\.0\.0\.1:\d+\//.test(serverLog),
      options.readyTimeoutMs ?? 60_000,
      () => serverLog,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    urlOf: (notebook) => `http://127.0.0.1:${port}/notebooks/${notebook}?token=${options.token}`,
    log: () => serverLog,
    stop,
  };
}
