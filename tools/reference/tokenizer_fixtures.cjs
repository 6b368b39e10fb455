#!/usr/bin/env node
// Token ids that the models' own tokenizers give for fixed strings, for Memo's tokenizer tests.
//
// tiktoken encodings (gpt2, r50k_base, cl100k_base, o200k_base): js-tiktoken, which ships OpenAI's
// rank files. Hugging Face tokenizer.json: @huggingface/tokenizers (Tokenizers.js). Neither is part of
// the repository; install them in a scratch directory and point this script at it:
//
//   mkdir -p /tmp/tok && (cd /tmp/tok && npm install js-tiktoken@1.0.21 @huggingface/tokenizers@0.2.0)
//   node tools/reference/tokenizer_fixtures.cjs /tmp/tok tests/Memo.Tests/Fixtures/tokenizers
//
// Writes expected.json in the output directory: {strings: [...], tokenizers: {name: [[ids], ...]}}.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const [scratch, outDir] = process.argv.slice(2);
if (!scratch || !outDir) {
  console.error("usage: node tokenizer_fixtures.cjs SCRATCH_NODE_DIR OUT_DIR");
  process.exit(2);
}
const req = createRequire(path.join(path.resolve(scratch), "package.json"));
const tiktoken = req("js-tiktoken");
const { Tokenizer } = req("@huggingface/tokenizers");

const STRINGS = [
  "Hello, world! This is a test.",
  "naïve café résumé Ångström façade",
  "日本語のテキストと中文字符",
  "emoji 🤖🎉👍🏽 family 👨‍👩‍👧 done",
  "tabs\tand   spaces\n\n\nnewlines  \t end  ",
  "   leading spaces and 1234567890 numbers 3.14159",
  "def f(x):\n    return x**2  # code\r\n",
  "The quick brown fox jumps over the lazy dog.",
];

const out = { strings: STRINGS, tokenizers: {} };
for (const name of ["gpt2", "r50k_base", "cl100k_base", "o200k_base"]) {
  const enc = tiktoken.getEncoding(name);
  out.tokenizers[name] = STRINGS.map((s) => {
    const ids = enc.encode(s);
    if (enc.decode(ids) !== s) throw new Error(`${name}: round trip failed for ${JSON.stringify(s)}`);
    return ids;
  });
}
const tinyDir = path.join(outDir, "tiny-bpe");
const tj = JSON.parse(fs.readFileSync(path.join(tinyDir, "tokenizer.json"), "utf8"));
const tc = JSON.parse(fs.readFileSync(path.join(tinyDir, "tokenizer_config.json"), "utf8"));
const tiny = new Tokenizer(tj, tc);
out.tokenizers["tiny-bpe/tokenizer.json"] = STRINGS.map((s) => {
  const ids = tiny.encode(s, { add_special_tokens: false }).ids;
  if (tiny.decode(ids) !== s) throw new Error(`tiny-bpe: round trip failed for ${JSON.stringify(s)}`);
  return ids;
});
fs.writeFileSync(path.join(outDir, "expected.json"), JSON.stringify(out, null, 0).replace(/\],\[/g, "],\n[") + "\n");
for (const [k, v] of Object.entries(out.tokenizers)) console.log(k, v.map((x) => x.length).join(" "));
