// The VS Code side of grpo-dsl: starts `grpo lsp` for .grpo files and runs the
// commands of its code lenses (`grpo plan --explain`, `grpo run`, `grpo eval`) in a
// terminal. Everything else (diagnostics, hover, completion, navigation,
// formatting, the lenses themselves) comes from the server.
"use strict";
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function serverCommand() {
  return vscode.workspace.getConfiguration("grpo").get("server.command", ["grpo", "lsp", "--stdio"]);
}

function quoted(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

function inTerminal(args) {
  const terminal = vscode.window.createTerminal("grpo");
  terminal.show();
  terminal.sendText([serverCommand()[0], ...args].map(quoted).join(" "));
}

function activate(context) {
  const [command, ...args] = serverCommand();
  client = new LanguageClient(
    "grpo",
    "grpo language server",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "grpo" }] },
  );
  context.subscriptions.push(
    vscode.commands.registerCommand("grpo.explainPlan", (file) => inTerminal(["plan", "--explain", file])),
    vscode.commands.registerCommand("grpo.run", (file, kind, name) =>
      inTerminal(kind === "learn" ? ["run", file, "--learn", name] : ["eval", file, "--evaluate", name]),
    ),
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
