"""CLIP's byte-level BPE over the merge list the library ships, for this tool's captions.

It follows openai/CLIP's simple_tokenizer for what the captions contain (lower-case ASCII
words and spaces); train.py checks a few captions against `asyncdiffusion tokenize --json`.
"""
import gzip
import re

BOS, EOS, MAX_LENGTH = 49406, 49407, 77
_MERGES = 49152 - 256 - 2


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class ClipBpe:
    def __init__(self, merges_gz):
        with gzip.open(merges_gz, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1:_MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        byte_chars = list(_bytes_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self._cache = {}

    def _bpe(self, word):
        if word in self._cache:
            return self._cache[word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, _ = min(pairs)
            if rank == 1 << 30:
                break
            pair = None
            for r, i in pairs:
                if r == rank:
                    pair = (parts[i], parts[i + 1])
                    break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = [self.ids[p] for p in parts]
        return self._cache[word]

    def encode(self, text):
        """Token ids without BOS/EOS, for lower-case ASCII words (anything else is refused)."""
        text = re.sub(r"\s+", " ", text.strip().lower())
        if not re.fullmatch(r"[a-z ]*", text):
            raise ValueError(f"caption {text!r}: this tokenizer only handles lower-case ASCII words")
        ids = []
        for word in text.split():
            ids += self._bpe(word)
        return ids

    def input_ids(self, text):
        """77 ids: BOS, the caption, EOS, EOS padding (SD 1.x's CLIP tokenizer)."""
        ids = [BOS] + self.encode(text)[:MAX_LENGTH - 2] + [EOS]
        return ids + [EOS] * (MAX_LENGTH - len(ids))
