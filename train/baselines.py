"""Baselines scored beside the model: keyword rules, and TF-IDF + logistic regression."""

from __future__ import annotations

import re

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from rustance.keywords import SENTIMENT_CUES, STANCE_CUES, TOPIC_PATTERNS, description_pattern
from rustance.labels import SENTIMENTS, STANCES, Topic
from rustance.metrics import Labels
from rustance.records import Record


def _in_order(model: LogisticRegression, features, labels: tuple[str, ...]) -> np.ndarray:
    """``model``'s class probabilities in the order of ``labels``; 0 for a label it never saw in training."""
    probabilities = model.predict_proba(features)
    out = np.zeros((probabilities.shape[0], len(labels)))
    for column, label in enumerate(model.classes_):
        out[:, labels.index(str(label))] = probabilities[:, column]
    return out


class KeywordBaseline:
    """Topic if a topic keyword occurs; stance and sentiment from cue words (no training)."""

    name = "keyword rules"

    def __init__(self, topics: tuple[Topic, ...]):
        self.topic_patterns = {
            t.id: re.compile(TOPIC_PATTERNS.get(t.id) or description_pattern(t.description), re.IGNORECASE)
            for t in topics
        }
        self.stance_patterns = {k: re.compile(v, re.IGNORECASE) for k, v in STANCE_CUES.items()}
        self.sentiment_patterns = {k: re.compile(v, re.IGNORECASE) for k, v in SENTIMENT_CUES.items()}

    def fit(self, records: list[Record]) -> "KeywordBaseline":
        return self

    def _stance(self, text: str) -> str:
        for stance in ("conditional", "critical", "conciliatory"):  # the tie-break order
            if self.stance_patterns[stance].search(text):
                return stance
        return "neutral"

    def _sentiment(self, text: str) -> str:
        neg = len(self.sentiment_patterns["negative"].findall(text))
        pos = len(self.sentiment_patterns["positive"].findall(text))
        return "negative" if neg > pos else "positive" if pos > neg else "neutral"

    def predict(self, texts: list[str]) -> list[Labels]:
        result = []
        for text in texts:
            stance = self._stance(text)
            topics = {t: stance for t, p in self.topic_patterns.items() if p.search(text)}
            result.append(Labels(topics, self._sentiment(text), {t: stance for t in self.topic_patterns}))
        return result


class TfidfBaseline:
    """TF-IDF (word + character n-grams) with class-balanced logistic regression per task."""

    name = "TF-IDF + logistic regression"

    def __init__(self, topics: tuple[Topic, ...], seed: int = 0, context: bool = False):
        """``context``: the topic models also read the previous sentence's n-grams, as features of their own
        (a sentence whose topic only its previous sentence names: «этих тем»); stance and sentiment read the
        sentence alone. Without it (the evaluation baseline) every model reads the sentence alone."""
        self.topic_ids = [t.id for t in topics]
        self.seed = seed
        self.context = context
        self.words = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True)
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                     max_features=100_000)

    def _features(self, texts: list[str]):
        return hstack([self.words.transform(texts), self.chars.transform(texts)]).tocsr()

    def _topic_features(self, features, contexts: list[str] | None, n: int):
        """The topic models' features: the sentence's, and with ``context`` its previous sentence's beside them
        (none given: an empty context)."""
        if not getattr(self, "context", False):  # files saved before the option existed read the sentence alone
            return features
        contexts = [c or "" for c in contexts] if contexts is not None else [""] * n
        if len(contexts) != n:
            raise ValueError(f"{n} sentences but {len(contexts)} contexts")
        return hstack([features, self._features(contexts)]).tocsr()

    def _classifier(self) -> LogisticRegression:
        return LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=self.seed)

    def _topic_onehot(self, n_rows: int, topic_index: int) -> np.ndarray:
        onehot = np.zeros((n_rows, len(self.topic_ids)))
        onehot[:, topic_index] = 1.0
        return onehot

    def fit(self, records: list[Record]) -> "TfidfBaseline":
        texts = [r.text for r in records]
        self.words.fit(texts)
        self.chars.fit(texts)
        features = self._features(texts)
        topic_features = self._topic_features(features, [r.context for r in records], len(records))
        self.topic_models = {}
        for t in self.topic_ids:
            y = np.array([t in r.topics for r in records], dtype=int)
            self.topic_models[t] = self._classifier().fit(topic_features, y) if 0 < y.sum() < len(y) else int(y.any())
        rows, onehots, stances = [], [], []
        for i, r in enumerate(records):
            for t, stance in r.topics.items():
                rows.append(i)
                onehots.append(self._topic_onehot(1, self.topic_ids.index(t))[0])
                stances.append(stance)
        self.stance_model = None
        if len(set(stances)) > 1:
            self.stance_model = self._classifier().fit(hstack([features[rows], np.array(onehots)]).tocsr(), stances)
        self.default_stance = max(set(stances), key=stances.count) if stances else "neutral"
        sentiments = [r.sentiment for r in records]
        self.sentiment_model = self._classifier().fit(features, sentiments) if len(set(sentiments)) > 1 else None
        self.default_sentiment = max(set(sentiments), key=sentiments.count)
        return self

    def probabilities(self, texts: list[str], contexts: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Topic ``(n, topics)``, stance ``(n, topics, stances)`` (``STANCES`` order) and sentiment ``(n, 3)``
        (``SENTIMENTS`` order) probabilities, the model's shapes (for blending the two; needs a stance and a
        sentiment model, i.e. training data with more than one class of each; a class absent from the training data
        gets probability 0). ``contexts``: each sentence's previous sentence, read by the topic models of a
        ``context`` model (ignored otherwise)."""
        features = self._features(texts)
        n, k = len(texts), len(self.topic_ids)
        topic_features = self._topic_features(features, contexts, n)
        topic = np.zeros((n, k))
        for j, t in enumerate(self.topic_ids):
            model = self.topic_models[t]
            topic[:, j] = model.predict_proba(topic_features)[:, 1] if not isinstance(model, int) else float(model)
        stance = np.zeros((n, k, len(STANCES)))
        for j in range(k):
            rows = hstack([features, self._topic_onehot(n, j)]).tocsr()
            stance[:, j] = _in_order(self.stance_model, rows, STANCES)
        return topic, stance, _in_order(self.sentiment_model, features, SENTIMENTS)

    def predict(self, texts: list[str], contexts: list[str] | None = None) -> list[Labels]:
        features = self._features(texts)
        n = len(texts)
        topic_features = self._topic_features(features, contexts, n)
        present = {}
        for t, model in self.topic_models.items():
            present[t] = model.predict(topic_features).astype(bool) if not isinstance(model, int) else np.full(n, bool(model))
        stance_for = {}
        for j, t in enumerate(self.topic_ids):
            if self.stance_model is None:
                stance_for[t] = [self.default_stance] * n
            else:
                stance_for[t] = self.stance_model.predict(hstack([features, self._topic_onehot(n, j)]).tocsr())
        if self.sentiment_model is None:
            sentiments = [self.default_sentiment] * n
        else:
            sentiments = self.sentiment_model.predict(features)
        return [
            Labels(
                topics={t: str(stance_for[t][i]) for t in self.topic_ids if present[t][i]},
                sentiment=str(sentiments[i]),
                stance_for={t: str(stance_for[t][i]) for t in self.topic_ids},
            )
            for i in range(n)
        ]
