// Tokenise .grpo files with the TextMate grammar as VS Code does (vscode-textmate
// with the Oniguruma WASM). Usage: node tokenize.js GRAMMAR FILE...
// Prints a JSON object: for each file, `open` (the rule stack left at the end of
// the file is deeper than the root: a region the grammar never closed) and, for
// each line, its tokens as [start, end, innermost scope].
"use strict";
const fs = require("fs");
const textmate = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

async function main([grammarPath, ...files]) {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async () => textmate.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
  });
  const grammar = await registry.loadGrammar("source.grpo");
  const results = {};
  for (const file of files) {
    let stack = textmate.INITIAL;
    const lines = [];
    for (const line of fs.readFileSync(file, "utf8").split(/\r?\n/)) {
      const result = grammar.tokenizeLine(line, stack);
      lines.push(result.tokens.map((t) => [t.startIndex, Math.min(t.endIndex, line.length), t.scopes[t.scopes.length - 1]]));
      stack = result.ruleStack;
    }
    results[file] = { open: stack.depth > 1, lines };
  }
  process.stdout.write(JSON.stringify(results));
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error);
  process.exit(1);
});
