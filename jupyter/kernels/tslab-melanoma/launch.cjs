// Starts tslab with the project root as its working folder: tslab uses the start folder as the
// TypeScript rootDir, so notebooks can import ./lib/index.js wherever the notebook file lives.
"use strict";
const path = require("path");
const root = path.resolve(__dirname, "..", "..", "..");
process.chdir(root);
process.env.MELANOMA_LAB_ROOT = process.env.MELANOMA_LAB_ROOT || root;
const tslabDir = path.join(root, "node_modules", "tslab");
// tslab's TypeScript watch program reacts to every file written anywhere under the project root
// (feature cache, logs, models) and then crashes the kernel with "Unexpected pending
// rebuildTimer". Directory watches only serve module resolution of files that do not exist yet;
// lib/ files that exist are still watched one by one, so edits to them are picked up.
const ts = require(require.resolve("@tslab/typescript-for-tslab", { paths: [tslabDir] }));
ts.sys.watchDirectory = () => ({ close() {} });
const { startKernel } = require(path.join(tslabDir, "dist", "main.js"));
startKernel({ configPath: process.argv[2] || "", enableFindLocal: false });
