"""Round 5+ candidate selection: embedding similarity, keyword and stance-cue quotas, context, random.

Candidates are *not* labels: every label is given by a reader against data/GUIDELINES.md.
This script only decides which corpus sentences are worth reading. It

1. builds the pool of sentences of ../shared/corpora (40–400 characters, Cyrillic words), minus sentences
   already in the data or in earlier rounds (``--exclude``) and minus repeated texts;
2. encodes the pool once with the shared encoder (multilingual-e5-small; mean pooling, ``passage:`` prefix,
   cached in ``--cache``) and every topic description (``query:`` prefix) and ranks sentences by cosine
   similarity to each topic — this finds topical sentences that no keyword pattern matches;
3. picks, per round, with quotas:
   * ``embedding``: the most similar sentences per topic (rare topics get larger quotas);
   * ``cue``: sentences with a conditional or conciliatory cue word (rustance.keywords.STANCE_CUES) that are
     near a topic (keyword hit or similarity above the topic's embedding cut-off) — these stances are rare;
   * ``context``: sentences that point back to an issue («этих тем», «такие шаги», «этот вопрос») while
     their previous sentence is about a topic and they themselves match no keyword — the sentences whose
     topic only the context names;
   * ``keyword``: keyword hits not taken above;
   * ``random``: sentences matching nothing (negatives, and a check on what the other routes miss);
   * ``classifier``: the pool sentences a TF-IDF + logistic-regression model, fitted on the labelled data so
     far, finds most likely to hold a pair of a rare stance (``--classifier-stance``, conciliatory by default)
     — an active-learning ranking for the stance the other routes find least; it picks, never labels;
4. writes shuffled batches (with text and previous sentence) to an ignored work folder, never into data/.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import numpy as np

from rustance.corpora import CORPORA, iter_documents, span_digest
from rustance.keywords import STANCE_CUES, TOPIC_PATTERNS
from rustance.labels import load_topics
from rustance.text import split_sentences

PATTERNS = {t: re.compile(p, re.IGNORECASE if t != "strategic_stability" else 0) for t, p in TOPIC_PATTERNS.items()}
RARE_CUES = re.compile(STANCE_CUES["conditional"] + "|" + STANCE_CUES["conciliatory"], re.IGNORECASE)
# Wider nets for the rare stances (selection only): linkage, warnings and retaliation; openness and hopes.
WIDE_CUES = re.compile(
    r"\bответ\w*|асимметричн|пока не\b|до тех пор|только если|в обмен|взамен|увязыва|предупреди|пригрози"
    r"|последстви|не останется без|вынужден|в противном случае|услови|требова|ультиматум|не исключа"
    r"|открыт\w* (к|для)|призв\w* к|надеж|надея|рассчитыва|заинтересован|наладить|налажива|улучшить|потеплени"
    r"|перезагруз|восстанов|продолж\w* (диалог|сотруднич|переговор)|договорил|совместн|партн[её]р|шаг\w* навстречу",
    re.IGNORECASE)
# A sentence that points back to an issue named before it.
ANAPHORA = re.compile(
    r"\b(эт\w{0,3}|так\w{0,3}|данн\w{0,3}|подобн\w{0,3}|указанн\w{0,3}|упомянут\w{0,3}|тех|те)\s+"
    r"(тем\w{0,2}|вопрос\w{0,2}|мер\w{0,2}|шаг\w{0,2}|решени\w{0,2}|проблем\w{0,2}|ограничени\w{0,2}|"
    r"договор\w{0,3}|соглашени\w{0,2}|переговор\w{0,2}|действи\w{0,2}|санкци\w{0,2}|запрет\w{0,2}|"
    r"предложени\w{0,2}|инициатив\w{0,2}|услови\w{0,2}|требовани\w{0,2}|шагов|сюжет\w{0,2}|"
    r"направлени\w{0,2}|сфер\w{0,2}|объект\w{0,2}|здани\w{0,2}|рейс\w{0,2}|сообщени\w{0,2}|"
    r"дипломат\w{0,2}|сотрудник\w{0,2}|ситуаци\w{0,2}|конфликт\w{0,2}|кризис\w{0,2}|тем[аеыу]?)\b",
    re.IGNORECASE,
)
# Weaker back-references (pronouns, "in response"): the second tier of the context route.
BACKREF = re.compile(r"\b(эт[оиуа]\w{0,3}|так\w{0,3}|данн\w{0,3}|подобн\w{0,3}|он[аи]?|его|её|их|там|тогда|ответ\w*"
                     r"|сторон[аы])\b", re.IGNORECASE)
RARE_TOPICS = {"flights": 3.0, "diplomatic_property": 3.0, "diplomatic_missions": 2.0}


def build_pool(corpora: Path, exclude: set, exclude_texts: set) -> list[dict]:
    pool, texts = [], set(exclude_texts)
    for corpus in CORPORA:
        for doc, text in iter_documents(corpus, corpora):
            previous = ""
            for sent in split_sentences(text):
                clean = " ".join(sent.text.split())
                key = clean.lower()
                if (40 <= len(clean) <= 400 and re.search("[а-яА-Я]{3}", clean)
                        and (corpus, doc, sent.start) not in exclude and key not in texts):
                    texts.add(key)
                    pool.append({"source": {"corpus": corpus, "doc": doc, "start": sent.start, "end": sent.end,
                                            "sha1": span_digest(sent.text)},
                                 "text": sent.text, "context": previous})
                previous = sent.text
    return pool


def embed(texts: list[str], model_dir: str, prefix: str, batch: int = 64, layers: int | None = None,
          max_length: int = 96) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    if layers:  # the lowest layers only: a cheaper, coarser similarity for ranking candidates
        model.encoder.layer = model.encoder.layer[:layers]
    order = np.argsort([len(t) for t in texts])[::-1]
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(texts), batch):
            idx = order[i:i + batch]
            enc = tok([prefix + texts[j] for j in idx], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            hidden = model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vec = (hidden * mask).sum(1) / mask.sum(1)
            out[idx] = torch.nn.functional.normalize(vec, dim=-1).numpy()
            if (i // batch) % 100 == 0:
                print(f"  encoded {i + len(idx)}/{len(texts)}", flush=True)
    return out


def telegram_news_docs(corpora: Path, categories=("political", "business", "finances", "other")) -> set[str]:
    """Doc ids of Telegram posts whose (silver) category is news-like."""
    docs = set()
    for path in sorted((corpora / "telegram_news" / "raw").glob("*_messages.json")):
        stem = path.name.split("_")[0]
        docs.update(f"{stem}:{m['message_id']}" for m in json.loads(path.read_text(encoding="utf-8"))
                    if m.get("category") in categories)
    return docs


def ruattitudes_positive(corpora: Path) -> set[str]:
    """Sentences (normalised text) to which RuAttitudes' distant supervision gives a positive entity-to-entity
    attitude: silver hints of rapprochement, used only to find candidates for the rare conciliatory stance."""
    from rustance.corpora import detokenize

    found, attitudes = set(), []
    for line in open(corpora / "ruattitudes" / "collection.txt", encoding="utf-8"):
        if line.startswith("Attitude:"):
            attitudes.append(re.search(r"b:\((-?\d)\)", line).group(1))
        elif line.startswith(("Text:", "Title:")):
            if "1" in attitudes:
                found.add(" ".join(detokenize(line.split(":", 1)[1].strip()).split()).lower())
            attitudes = []
        elif line.startswith("-----"):
            attitudes = []
    return found


def read_sources(paths: list[Path]) -> tuple[set, set]:
    keys, texts = set(), set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            src = obj.get("source")
            if src:
                keys.add((src["corpus"], str(src["doc"]), src["start"]))
            if obj.get("text"):
                texts.add(" ".join(obj["text"].split()).lower())
    return keys, texts


def rank_by_classifier(pool: list[dict], candidates: list[int], stances: list[str], corpora: Path) -> list[int]:
    """``candidates`` (pool indices) ordered by the probability, under TF-IDF + logistic regression fitted on
    data/stance (all splits but test), that a sentence holds a (topic, stance) pair of one of ``stances``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    from rustance.records import load_records

    texts, targets = [], []
    for split in ("train", "dev"):
        for record in load_records(Path("data/stance") / f"{split}.jsonl", load_topics(), str(corpora)):
            texts.append(record.text)
            targets.append(int(any(s in stances for s in record.topics.values())))
    model = make_pipeline(
        make_union(TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2), max_features=200_000),
                   TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(3, 5), min_df=3,
                                   max_features=200_000)),
        LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced"))
    model.fit(texts, targets)
    print(f"classifier route: fitted on {len(texts)} records ({sum(targets)} with {'/'.join(stances)})")
    scores = model.predict_proba([pool[i]["text"] for i in candidates])[:, 1]
    return [candidates[k] for k in np.argsort(-scores)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=Path("../shared/corpora"))
    parser.add_argument("--encoder", default="../shared/models/multilingual-e5-small-ru")
    parser.add_argument("--cache", type=Path, default=Path("work/pool"), help="pool + embeddings cache folder")
    parser.add_argument("--out", type=Path, default=Path("work/candidates5"))
    parser.add_argument("--exclude", type=Path, nargs="*", default=[],
                        help="JSONL files (data splits, earlier rounds' candidates) whose sentences to skip")
    parser.add_argument("--embedding-per-topic", type=int, default=150)
    parser.add_argument("--cue", type=int, default=600)
    parser.add_argument("--context", type=int, default=250)
    parser.add_argument("--keyword", type=int, default=300)
    parser.add_argument("--random", type=int, default=300)
    parser.add_argument("--prototypes", type=Path, default=None,
                        help="file of query sentences (one per line, # comments); the most similar pool sentences "
                             "form the 'prototype' route")
    parser.add_argument("--prototype", type=int, default=0, help="candidates from the prototype route")
    parser.add_argument("--attitude", type=int, default=0,
                        help="RuAttitudes sentences with a positive (silver) attitude, cue/keyword hits first")
    parser.add_argument("--batch-size", type=int, default=250, help="candidates per annotation batch")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--prefix", default="r5")
    parser.add_argument("--encoder-layers", type=int, default=None,
                        help="use only the encoder's lowest N layers (cheaper ranking on a busy CPU)")
    parser.add_argument("--classifier", type=int, default=0,
                        help="candidates ranked by a TF-IDF + logistic regression fitted on the labelled data")
    parser.add_argument("--classifier-stance", nargs="+", default=["conciliatory"],
                        help="the stance(s) the classifier route looks for")
    parser.add_argument("--no-embedding", action="store_true", help="skip the embedding route (no encoder pass)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    topics = load_topics()
    args.cache.mkdir(parents=True, exist_ok=True)
    pool_file, emb_file = args.cache / "pool.jsonl", args.cache / "pool.npy"
    if pool_file.exists():
        pool = [json.loads(line) for line in pool_file.read_text(encoding="utf-8").splitlines()]
    else:
        keys, texts = read_sources(sorted(Path("data/stance").glob("*.jsonl")))
        pool = build_pool(args.corpora, keys, texts)
        with open(pool_file, "w", encoding="utf-8") as handle:
            for p in pool:
                handle.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"pool: {len(pool)} sentences")
    if args.no_embedding:
        sims = np.full((len(pool), len(topics)), -1.0, dtype=np.float32)
    else:
        # Telegram is mostly non-political: encode only its news categories and keyword hits
        news = telegram_news_docs(args.corpora)
        mask = [p["source"]["corpus"] != "telegram_news" or p["source"]["doc"] in news
                or any(pat.search(p["text"]) for pat in PATTERNS.values()) for p in pool]
        if emb_file.exists():
            vectors = np.load(emb_file)
            subset = list(np.load(args.cache / "pool-subset.npy"))
        else:
            excluded, _ = read_sources(args.exclude)
            subset = [i for i, m in enumerate(mask) if m and (pool[i]["source"]["corpus"], str(pool[i]["source"]["doc"]),
                                                               pool[i]["source"]["start"]) not in excluded]
            np.save(args.cache / "pool-subset.npy", np.array(subset))
            print(f"encoding {len(subset)} of {len(pool)} sentences")
            vectors = embed([pool[i]["text"] for i in subset], args.encoder, "passage: ", layers=args.encoder_layers,
                            max_length=64)
            np.save(emb_file, vectors)
        queries = embed([t.description for t in topics], args.encoder, "query: ", layers=args.encoder_layers,
                        max_length=64)
        sims = np.full((len(pool), len(topics)), -1.0, dtype=np.float32)
        sims[subset] = vectors @ queries.T  # (pool, topics)
    taken_keys, _ = read_sources(args.exclude)
    alive = [i for i, p in enumerate(pool)
             if (p["source"]["corpus"], str(p["source"]["doc"]), p["source"]["start"]) not in taken_keys]
    hits = {i: [t for t, pat in PATTERNS.items() if pat.search(pool[i]["text"])] for i in alive}
    chosen: dict[int, str] = {}
    # 1. embedding: top sentences per topic
    cutoff = {t.id: np.inf for t in topics}
    for j, topic in enumerate(topics if not args.no_embedding else ()):
        ranked = sorted(alive, key=lambda i: -sims[i, j])
        quota = int(args.embedding_per_topic * RARE_TOPICS.get(topic.id, 1.0))
        cutoff[topic.id] = sims[ranked[min(len(ranked) - 1, 4 * quota)], j]
        n = 0
        for i in ranked:
            if n >= quota:
                break
            if i not in chosen:
                chosen[i] = "embedding" if topic.id not in hits[i] else "embedding+keyword"
                n += 1
    near = {i: bool(hits[i]) or any(sims[i, j] >= cutoff[t.id] for j, t in enumerate(topics)) for i in alive}
    # 2. rare stance cues near a topic
    cue_pool = [i for i in alive if i not in chosen and near[i] and RARE_CUES.search(pool[i]["text"])]
    rng.shuffle(cue_pool)
    for i in cue_pool[:args.cue]:
        chosen[i] = "cue"
    # 2a. prototype route: nearest to written query sentences of the rare stances (selection only)
    if args.prototype and args.prototypes and not args.no_embedding:
        queries_text = [q.strip() for q in args.prototypes.read_text(encoding="utf-8").splitlines()
                        if q.strip() and not q.startswith("#")]
        proto = np.full(len(pool), -1.0, dtype=np.float32)
        proto[subset] = (vectors @ embed(queries_text, args.encoder, "query: ", layers=args.encoder_layers,
                                         max_length=64).T).max(axis=1)
        ranked = sorted((i for i in alive if i not in chosen), key=lambda i: -proto[i])
        for i in ranked[:args.prototype]:
            chosen[i] = "prototype"
    # 2c. classifier route: rank by a model of "holds a pair of the rare stance", fitted on the labels so far
    if args.classifier:
        ranked = rank_by_classifier(pool, [i for i in alive if i not in chosen], args.classifier_stance, args.corpora)
        for i in ranked[:args.classifier]:
            chosen[i] = "classifier"
    # 2b. RuAttitudes sentences with a positive silver attitude (rapprochement is rare in the other routes)
    if args.attitude:
        positive = ruattitudes_positive(args.corpora)
        att_pool = [i for i in alive if i not in chosen and " ".join(pool[i]["text"].split()).lower() in positive]
        rng.shuffle(att_pool)
        att_pool.sort(key=lambda i: (not hits[i], not WIDE_CUES.search(pool[i]["text"])))
        for i in att_pool[:args.attitude]:
            chosen[i] = "attitude"
    # 3. context: anaphora, topic in the previous sentence, none in the sentence itself
    index_of = {(p["source"]["corpus"], p["source"]["doc"], p["source"]["end"]): i for i, p in enumerate(pool)}
    ctx_pool = []
    for i in alive:
        p = pool[i]
        if i in chosen or hits[i] or not p["context"]:
            continue
        if any(pat.search(p["context"]) for pat in PATTERNS.values()):
            tier = 0 if ANAPHORA.search(p["text"]) else 1 if BACKREF.search(p["text"]) else 2
            ctx_pool.append((tier, rng.random(), i))
    ctx_pool = [i for _, _, i in sorted(ctx_pool)]
    for i in ctx_pool[:args.context]:
        chosen[i] = "context"
    # 4. keyword hits not taken (those with a wider rare-stance cue first), 5. random non-matching
    kw_pool = [i for i in alive if i not in chosen and hits[i]]
    rng.shuffle(kw_pool)
    kw_pool.sort(key=lambda i: not WIDE_CUES.search(pool[i]["text"]))
    for i in kw_pool[:args.keyword]:
        chosen[i] = "keyword"
    rnd_pool = [i for i in alive if i not in chosen and not hits[i]]
    rng.shuffle(rnd_pool)
    for i in rnd_pool[:args.random]:
        chosen[i] = "random"
    picked = []
    for i, how in chosen.items():
        cand = dict(pool[i])
        cand["pick"] = how
        cand["similar"] = {t.id: round(float(sims[i, j]), 3) for j, t in enumerate(topics)
                           if sims[i, j] >= cutoff[t.id]}
        picked.append(cand)
    rng.shuffle(picked)
    args.out.mkdir(parents=True, exist_ok=True)
    n_batches = max(1, round(len(picked) / args.batch_size))
    for b in range(n_batches):
        with open(args.out / f"batch{b:02d}.jsonl", "w", encoding="utf-8") as handle:
            for k, cand in enumerate(picked[b::n_batches]):
                cand["cid"] = f"{args.prefix}-{b:02d}-{k:03d}"
                handle.write(json.dumps(cand, ensure_ascii=False) + "\n")
    from collections import Counter

    print(f"{len(picked)} candidates in {n_batches} batches:", dict(Counter(c["pick"] for c in picked)))
    print(f"pools: cue {len(cue_pool)}, context {len(ctx_pool)}, keyword {len(kw_pool)}, random {len(rnd_pool)}")


if __name__ == "__main__":
    main()
