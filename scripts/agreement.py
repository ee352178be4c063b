"""Agreement of two annotation passes kept in the (ignored) work folder, matched by candidate id.

The committed, id-only copy of the pairs is data/stance/agreement.jsonl; `rustance data check` reports
the same figures from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rustance.agreement import agreement, agreement_markdown
from rustance.labels import load_topics


def read(paths: list[Path]) -> dict[str, dict]:
    items = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            items[obj["cid"]] = obj
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first", type=Path, nargs="+", required=True)
    parser.add_argument("--second", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    first, second = read(args.first), read(args.second)
    pairs = [(first[c], second[c]) for c in sorted(set(first) & set(second))]
    print(agreement_markdown(agreement(pairs, [t.id for t in load_topics()])))


if __name__ == "__main__":
    main()
