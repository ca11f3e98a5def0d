"""Count the words of one sample: one line per word, with its count."""

import collections
import re
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821, SIM115

min_length = snakemake.params.min_length  # noqa: F821
with open(snakemake.input[0]) as text:  # noqa: F821
    words = re.findall(r"[a-z']+", text.read().lower())
counts = collections.Counter(w for w in words if len(w) >= min_length)
with open(snakemake.output[0], "w") as out:  # noqa: F821
    for word, count in sorted(counts.items()):
        out.write(f"{word}\t{count}\n")
print(f"{len(counts)} distinct words", file=sys.stderr)
