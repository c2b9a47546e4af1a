# Reference encoder: Google's SentencePiece (Debian python3-sentencepiece; run with /usr/bin/python3).
# Usage: spm_encode.py TOKENIZER_MODEL CORPUS_JSONL
# Prints one JSON object: {"ids": [[...], ...], "decoded": [...]} with sp.encode(text) (no BOS)
# and sp.decode(ids) for every corpus line.
import json
import sys

import sentencepiece as spm

model_path, corpus_path = sys.argv[1], sys.argv[2]
sp = spm.SentencePieceProcessor(model_file=model_path)
with open(corpus_path, encoding="utf-8") as f:
    texts = [json.loads(line) for line in f if line.strip()]
ids = [sp.encode(t) for t in texts]
json.dump({"ids": ids, "decoded": [sp.decode(i) for i in ids]}, sys.stdout)
