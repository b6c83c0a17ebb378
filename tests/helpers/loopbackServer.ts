import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";

/** An HTTP server on 127.0.0.1 serving files, started by {@link serveFilesOverLoopback}. */
export interface LoopbackFileServer {
  /** "http://127.0.0.1:<port>". */
  baseUrl: string;
  /** Every request's URL path, in order (what a download-once test counts). */
  requested: string[];
  close(): Promise<void>;
}

/**
 * Serves files over loopback for download-and-cache tests: `fileOf(urlPath)` names the file for
 * a request (undefined, or a file that does not exist, answers 404). Stands in for a weights host.
 *
 * @example const server = await serveFilesOverLoopback((url) => path.join(weightsDir, url)); … await server.close();
 */
export async function serveFilesOverLoopback(
  fileOf: (urlPath: string) => string | undefined,
): Promise<LoopbackFileServer> {
  const requested: string[] = [];
  const server = http.createServer((req, res) => {
    requested.push(req.url ?? "");
    const file = fileOf(req.url ?? "");
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream" }).end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requested,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
