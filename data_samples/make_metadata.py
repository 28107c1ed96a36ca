"""Build the bundled sample metadata with the metadata package.

    python data_samples/make_metadata.py [--wordnet /usr/share/wordnet]

Sources, in this order (see metadata/README.md):
- wordnet: every WordNet 3.0 synset's name (Debian's wordnet-base: `apt-get install wordnet-base`);
- extra: the sample's own entries that WordNet lacks (brand-like, title-case and bigram entries that the
  bundled pool was generated around), taken from the current data_samples/metadata.json so that the
  pool keeps matching as before; rebuilding is idempotent, because the file this script writes holds
  exactly WordNet's names, these extra entries and the numbers;
- numbers: "0".."99".

Writes data_samples/metadata.json (MetaCLIP's JSON list, the path the README's quick start uses) and
data_samples/metadata.parquet (entry, sources). WordNet's licence is in data_samples/WORDNET_LICENSE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from metadata import files, fingerprint, load_entries  # noqa: E402
from metadata.build import BuildRequest, build  # noqa: E402
from metadata.merge import NUMBERS, render_table  # noqa: E402
from metadata.wordnet import read_wordnet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", default="/usr/share/wordnet", help="WordNet 3.0 database directory")
    parser.add_argument(
        "--previous",
        default=str(HERE / "metadata.json"),
        help="the list whose non-WordNet entries become extra entries",
    )
    args = parser.parse_args()
    wordnet = set(read_wordnet(args.wordnet).entries)
    numbers = set(NUMBERS)
    extras = [e for e in load_entries(args.previous) if e not in wordnet and e not in numbers]
    built = build(BuildRequest(wordnet=args.wordnet, extra_entries=extras, progress=False))
    merged = built.merged
    info = {**built.info(), "fingerprint": fingerprint(merged.entries), "script": "data_samples/make_metadata.py"}
    files.write_entries_json(HERE / "metadata.json", merged.entries)
    files.write_entries_parquet(HERE / "metadata.parquet", merged.entries, merged.sources, info)
    print(render_table(merged.sources, len(merged.entries), merged.reports))
    print(f"fingerprint {info['fingerprint']}")


if __name__ == "__main__":
    main()
