// Starts tslab with the project root as its working folder: tslab uses the start folder as the
// TypeScript rootDir, so notebooks can import ./lib wherever the notebook file lives.
"use strict";
const path = require("path");
const root = path.resolve(__dirname, "..", "..", "..");
process.chdir(root);
process.env.MELANOMA_LAB_ROOT = process.env.MELANOMA_LAB_ROOT || root;
const { startKernel } = require(path.join(root, "node_modules", "tslab", "dist", "main.js"));
startKernel({ configPath: process.argv[2] || "", enableFindLocal: false });
