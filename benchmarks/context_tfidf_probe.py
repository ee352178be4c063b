"""Probe (issue 15, one seed): would a TF-IDF part that also reads the previous sentence help the fusion?

A TF-IDF part that reads the sentence alone lowers the context-slice topic recall of the fusion. Here the
topic models of a second TF-IDF part also get the previous sentence's n-grams as separate features (stance and
sentiment unchanged); both parts are blended with the same network (``--network``, an unfused run) by
``choose_fusion`` on dev, and dev/test figures plus the context-slice recall of each are printed.

    python benchmarks/context_tfidf_probe.py --network RUN --plain FUSED_RUN/tfidf.skops

``--plain`` must be a part that reads the sentence alone: one fused before ``train.tfidf_context`` existed, or by
``rustance fuse --no-tfidf-context``. The second part is the built-in ``TfidfBaseline(context=True)`` that the
probe led to (it had its own copy of it before).
"""
import argparse
import time

import torch
from rustance import load
from rustance.labels import load_topics
from rustance.records import load_records
from rustance.lexical import load_lexical, blend
from rustance.train.baselines import TfidfBaseline
from rustance.train.fusion import choose_fusion
from rustance.train.trainer import record_targets
from rustance.metrics import decode_labels, headline, score
from rustance.train.trainer import record_labels

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--network", required=True, help="an unfused stance model folder")
parser.add_argument("--plain", required=True, help="the tfidf.skops of the same network's fused model")
parser.add_argument("--corpora", default="../shared/corpora")
args = parser.parse_args()
topics = load_topics(); ids=[t.id for t in topics]
C=args.corpora
clf = load(args.network, device="cpu")
data = {}
for split in ("dev","test"):
    recs = load_records(f"data/stance/{split}.jsonl", topics, C)
    logits,_ = clf.logits([r.text for r in recs],[r.context for r in recs])
    net = tuple(p.numpy() for p in clf.scale(logits))
    tg = record_targets(recs, topics)
    data[split]=(recs, net, tuple(tg[k].numpy() for k in ("presence","stance","sentiment")))
print("network probs done", flush=True)
plain = load_lexical(args.plain)
t=time.time(); train=load_records("data/stance/train.jsonl", topics, C)
ctx = TfidfBaseline(topics, context=True).fit(train); print("ctx fit", time.time()-t, flush=True)
def decide(split, lexical, w, th):
    """The blend's labels of ``split`` and its context-slice topic recall (share, pairs)."""
    recs, net, _ = data[split]
    fused = [p.numpy() for p in blend(tuple(torch.as_tensor(x) for x in net), lexical, w)]
    pred = decode_labels(*fused, ids, th)
    pairs = [t in p.topics for r, p in zip(recs, pred) if r.context_needed for t in r.topics]
    return pred, (round(sum(pairs) / max(len(pairs), 1), 3), len(pairs))


def run(name, lexfn):
    lex = {s: lexfn(data[s][0]) for s in data}
    w, th, devm = choose_fusion(data["dev"][1], lex["dev"], data["dev"][2], ids, log=lambda m: None)
    print(name, "dev ctx recall", *decide("dev", lex["dev"], w, th)[1], flush=True)
    pred, recall = decide("test", lex["test"], w, th)
    m = headline(score(record_labels(data["test"][0]), pred, ids))
    print(name, w, "dev", {k:round(v,3) for k,v in devm.items()}, "test", {k:round(v,3) for k,v in m.items()}, "ctx recall", *recall, flush=True)
run("plain", lambda recs: plain.probabilities([r.text for r in recs], [r.context for r in recs]))
run("context", lambda recs: ctx.probabilities([r.text for r in recs],[r.context for r in recs]))
