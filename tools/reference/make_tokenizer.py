#!/usr/bin/env python3
"""Trains a tiny byte-level BPE tokenizer and writes it as a Hugging Face tokenizer.json.

The test suite needs a tokenizer.json that is small and made here (no downloads). This script learns
merges by plain pair counting over a fixed built-in corpus (words split at spaces, the space kept with
the following word, GPT-2's byte-to-unicode alphabet), so its output is deterministic:

    /usr/bin/python3 tools/reference/make_tokenizer.py --out tests/Memo.Tests/Fixtures/tokenizers/tiny-bpe

The file uses the ByteLevel pre-tokenizer (GPT-2 regex) and decoder, so any UTF-8 text encodes.
Ids: 0..255 the byte alphabet, then one per merge, then <|endoftext|> as a special added token.
"""

import argparse
import collections
import json
import os

CORPUS = """
The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away into the forest.
Long context training needs memory: activations are swapped to the host and recomputed token by token.
A tokenizer turns text into ids, and the model learns to predict the next id from all the ids before it.
Il était une fois un café où l'on parlait de théâtre, de musique et de la mer. Ça va très bien, merci.
日本語の文章と中文的句子也在这里。 東京は大きな都市です。
def train(model, data):
    for step in range(1000):
        loss = model(data)
        loss.backward()
"""


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--merges", type=int, default=200)
    args = ap.parse_args()
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    words = collections.Counter()
    for line in CORPUS.split("\n"):
        parts = line.split(" ")
        for i, w in enumerate(parts):
            if not w:
                continue
            text = (" " if i > 0 else "") + w
            words[tuple(b2u[b] for b in text.encode("utf-8"))] += 1
    merges = []
    for _ in range(args.merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merged = best[0] + best[1]
        merges.append(best)
        vocab[merged] = len(vocab)
        new = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    eot = len(vocab)
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": eot, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>",
                   "bos_token": "<|endoftext|>", "model_max_length": 1024}, f, indent=1)
        f.write("\n")
    print(f"{args.out}: {len(vocab)} tokens + <|endoftext|> ({len(merges)} merges)")


if __name__ == "__main__":
    main()
