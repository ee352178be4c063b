"""Pick candidate sentences from ../shared/corpora for annotation (not labels!).

Keyword patterns only *select* candidates; every label is assigned by a reader.
A share of random sentences (no keyword) is mixed in so the data is not keyword-only.
Writes JSONL batches (with corpus text) to an ignored work folder, never into data/.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from rustance.corpora import iter_documents, span_digest
from rustance.keywords import STANCE_CUES, TOPIC_PATTERNS
from rustance.text import split_sentences

KEYWORDS = TOPIC_PATTERNS  # shared with the keyword baseline
PATTERNS = {topic: re.compile(p, re.IGNORECASE if topic != "strategic_stability" else 0) for topic, p in KEYWORDS.items()}
CORPORA_ORDER = ("rusentrel", "rusentne2023", "ruattitudes", "telegram_news")
RARE_STANCES = re.compile(STANCE_CUES["conditional"] + "|" + STANCE_CUES["conciliatory"], re.IGNORECASE)


def sentences(corpus: str, root: Path):
    for doc, text in iter_documents(corpus, root):
        previous = ""
        for sent in split_sentences(text):
            clean = " ".join(sent.text.split())
            if 40 <= len(clean) <= 400 and re.search("[а-яА-Я]{3}", clean):
                yield {
                    "source": {"corpus": corpus, "doc": doc, "start": sent.start, "end": sent.end,
                               "sha1": span_digest(sent.text)},
                    "text": sent.text, "context": previous,
                }
            previous = sent.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpora", type=Path, default=Path("../shared/corpora"))
    parser.add_argument("--out", type=Path, default=Path("work/candidates"))
    parser.add_argument("--per-topic", type=int, default=120)
    parser.add_argument("--random", type=int, default=300)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--exclude", type=Path, nargs="*", default=[], help="JSONL files whose sources to skip")
    parser.add_argument("--cue-share", type=float, default=0.0,
                        help="share of each topic quota reserved for sentences that also carry a conditional or "
                             "conciliatory cue word (these stances are rare)")
    parser.add_argument("--prefix", default="b", help="prefix of candidate ids")
    parser.add_argument("--weights", type=float, nargs=4, default=[1.0, 1.0, 0.5, 0.5],
                        help="quota weight per corpus: rusentrel rusentne2023 ruattitudes telegram_news")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seen = set()
    for path in args.exclude:
        for line in path.read_text(encoding="utf-8").splitlines():
            src = json.loads(line).get("source")
            if src is None:
                continue
            seen.add((src["corpus"], src["doc"], src["start"]))
    weights = dict(zip(CORPORA_ORDER, args.weights))
    picked, texts = [], set()
    for corpus, weight in weights.items():
        pool = [c for c in sentences(corpus, args.corpora)
                if (corpus, c["source"]["doc"], c["source"]["start"]) not in seen]
        rng.shuffle(pool)
        quota = {t: int(args.per_topic * weight / 2) for t in KEYWORDS}
        for topic in ("flights", "diplomatic_property"):  # rare in the corpora: take all we can
            quota[topic] *= 3
        n_random = int(args.random * weight / 3)
        cue_reserve = {t: int(q * args.cue_share) for t, q in quota.items()}
        for cand in pool:
            key = " ".join(cand["text"].split())
            if key in texts:
                continue
            hits = [t for t, p in PATTERNS.items() if p.search(cand["text"])]
            cue = bool(RARE_STANCES.search(cand["text"]))
            take = [t for t in hits if quota[t] > 0 and (cue or quota[t] > cue_reserve[t])]
            if take:
                for t in take:
                    quota[t] -= 1
                cand["pick"] = "keyword"
            elif not hits and n_random > 0:
                n_random -= 1
                cand["pick"] = "random"
            else:
                continue
            texts.add(key)
            picked.append(cand)
    rng.shuffle(picked)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.batches):
        batch = picked[i :: args.batches]
        with open(args.out / f"batch{i}.jsonl", "w", encoding="utf-8") as handle:
            for j, cand in enumerate(batch):
                cand["cid"] = f"{args.prefix}{i}-{j:03d}"
                handle.write(json.dumps(cand, ensure_ascii=False) + "\n")
        print(f"batch{i}: {len(batch)} candidates")


if __name__ == "__main__":
    main()
