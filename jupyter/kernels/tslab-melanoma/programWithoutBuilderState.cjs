// tslab builds a new TypeScript program for every cell through a watch host whose default
// program is an "emit and semantic diagnostics builder". That builder's state records, for every
// file of the program (lib/ and every declaration file under node_modules), the files it
// references, resolving each import through a type checker it creates for the purpose: ~100 ms
// per cell here, ~4 s over the demo's notebooks. tslab reads that state through one call only,
// getAllDependencies(cell file), to list the project files a cell needs compiled and checked.
// This program skips the state (TypeScript's abstract builder: the same program, diagnostics
// and emit; the checker is still created at once, which binds the files) and answers getAllDependencies from the imports the program already resolved:
// the files reachable from the cell, declaration files included as leaves (a .d.ts does not
// import project sources). A cell that is a script (no import or export) affects the global
// scope, so, as in TypeScript's builder, every file is a dependency. Checked against the
// builder's own answer in tests/notebooks/kernelLauncher.test.ts.
"use strict";

/**
 * The file names `sourceFile` depends on in `program`: itself and every file reachable through
 * its resolved imports, or every file of the program when it affects the global scope.
 *
 * @param {typeof import("typescript")} ts
 * @param {import("typescript").Program} program
 * @param {import("typescript").SourceFile} sourceFile
 * @returns {string[]}
 */
function listDependencies(ts, program, sourceFile) {
  const affectsGlobalScope =
    (sourceFile.moduleAugmentations || []).some((a) => ts.isGlobalScopeAugmentation(a.parent)) ||
    (!ts.isExternalOrCommonJsModule(sourceFile) &&
      !ts.isJsonSourceFile(sourceFile) &&
      !sourceFile.statements.every((s) => ts.isModuleDeclaration(s) && ts.isStringLiteral(s.name)));
  if (affectsGlobalScope) return program.getSourceFiles().map((f) => f.fileName);
  const seen = new Set([sourceFile.fileName]);
  const pending = [sourceFile];
  while (pending.length > 0) {
    const file = pending.pop();
    const targets = [];
    // TypeScript 5.0 keeps each import's resolution (with its failed lookups) on the SourceFile.
    if (file.resolvedModules) {
      file.resolvedModules.forEach((resolution) => {
        const resolved = resolution && resolution.resolvedModule;
        if (resolved) targets.push(resolved.resolvedFileName);
      });
    }
    for (const ref of file.referencedFiles) targets.push(ts.resolveTripleslashReference(ref.fileName, file.fileName));
    for (const target of targets) {
      const found = program.getSourceFile(target);
      if (!found || seen.has(found.fileName)) continue;
      seen.add(found.fileName);
      if (!found.isDeclarationFile) pending.push(found);
    }
  }
  return Array.from(seen);
}

/**
 * A `createProgram` for ts.createWatchCompilerHost: TypeScript's abstract builder with
 * getAllDependencies from {@link listDependencies}.
 *
 * @param {typeof import("typescript")} ts
 */
function createProgramWithoutBuilderState(ts) {
  return function createProgram(...args) {
    const builder = ts.createAbstractBuilder(...args);
    builder.getAllDependencies = (sourceFile) => listDependencies(ts, builder.getProgram(), sourceFile);
    // tslab reads the cell's bound symbols (SourceFile.locals) right after the program is made;
    // the builder state used to bind every file by creating this checker (emit needs it anyway).
    builder.getProgram().getTypeChecker();
    return builder;
  };
}

module.exports = { createProgramWithoutBuilderState, listDependencies };
