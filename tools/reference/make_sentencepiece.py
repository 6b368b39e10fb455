#!/usr/bin/env python3
"""Trains a tiny Llama-style SentencePiece BPE model and writes the ids the SentencePiece library gives.

The test suite needs a tokenizer.model that is small and made here (no downloads). Needs Debian's
python3-sentencepiece (`apt-get install -y python3-sentencepiece`). Settings as Llama's tokenizer:
BPE, byte fallback, identity normalization, dummy prefix, unk/bos/eos = 0/1/2. Deterministic:

    /usr/bin/python3 tools/reference/make_sentencepiece.py --out tests/Memo.Tests/Fixtures/tokenizers

Writes tiny-spm/tokenizer.model and expected-spm.json ({strings, tokenizers: {"tiny-spm/tokenizer.model": [[ids]...]}})
for the same strings as tokenizer_fixtures.cjs (read from expected.json, which that script writes).
"""

import argparse
import json
import os
import sys
import tempfile

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(__file__))
from make_tokenizer import CORPUS  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = os.path.join(args.out, "tiny-spm")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for _ in range(20):
                f.write(CORPUS)
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(tmp, "m"), vocab_size=400, model_type="bpe",
            byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
            add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
        with open(os.path.join(tmp, "m.model"), "rb") as f:
            model = f.read()
    with open(os.path.join(out, "tokenizer.model"), "wb") as f:
        f.write(model)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model"))
    with open(os.path.join(args.out, "expected.json"), encoding="utf-8") as f:
        strings = json.load(f)["strings"]
    ids = []
    for s in strings:
        e = sp.encode(s)
        assert sp.decode(e) == s, s
        ids.append(e)
    with open(os.path.join(args.out, "expected-spm.json"), "w", encoding="utf-8") as f:
        json.dump({"strings": strings, "tokenizers": {"tiny-spm/tokenizer.model": ids}}, f, ensure_ascii=False)
        f.write("\n")
    print(f"{out}/tokenizer.model: {sp.get_piece_size()} pieces, {len(model)} bytes")


if __name__ == "__main__":
    main()
