// tslab compiles each cell and every project file it imports to ES modules, then turns each
// output into CommonJS with ts.transpileModule (its esModuleToCommonJSModule). transpileModule
// builds a one-file program whose emit first type-checks that file in full (the checker's eager
// diagnostics), although the result is only printed: ~70% of the time of converting lib/'s 127
// files (~2.5 s of the first notebook cell on this 2-core machine). A file marked
// `/// <reference no-default-lib="true"/>` compiled with skipDefaultLibCheck is exempt from type
// checking (TypeScript's skipTypeChecking), and JavaScript's ES module → CommonJS conversion
// needs nothing from that check: imports in .js files are never elided and every binding it
// rewrites is resolved on demand. The output is the same text (checked for every lib/ file in
// tests/notebooks/esmToCommonJs.test.ts) with the marker line taken out again.
"use strict";

const SKIP_CHECK_MARKER = '/// <reference no-default-lib="true"/>\n';

/**
 * Returns `transpileModule` for `ts` that converts tslab's ES module outputs (file name
 * "custom.js", module CommonJS) without type-checking them; any other call goes to the original.
 *
 * @param {typeof import("typescript")} ts TypeScript (tslab's fork)
 * @returns {typeof import("typescript").transpileModule}
 */
function createFastTranspileModule(ts) {
  const transpileModule = ts.transpileModule;
  return function fastTranspileModule(input, transpileOptions) {
    const compilerOptions = (transpileOptions && transpileOptions.compilerOptions) || {};
    const isTslabCommonJsConversion =
      transpileOptions.fileName === "custom.js" &&
      compilerOptions.module === ts.ModuleKind.CommonJS &&
      !input.includes(SKIP_CHECK_MARKER);
    if (!isTslabCommonJsConversion) return transpileModule(input, transpileOptions);
    const result = transpileModule(SKIP_CHECK_MARKER + input, {
      ...transpileOptions,
      compilerOptions: { ...compilerOptions, skipDefaultLibCheck: true },
    });
    const at = result.outputText.indexOf(SKIP_CHECK_MARKER);
    // The marker is printed as the first statement's leading comment, after emit helpers.
    if (at < 0) return transpileModule(input, transpileOptions);
    const outputText = result.outputText.slice(0, at) + result.outputText.slice(at + SKIP_CHECK_MARKER.length);
    return { ...result, outputText };
  };
}

module.exports = { createFastTranspileModule, SKIP_CHECK_MARKER };
