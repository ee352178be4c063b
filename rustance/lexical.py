"""The lexical part of a model: TF-IDF + logistic regression blended with the network's probabilities.

On this project's data a bag of word and character n-grams detects topics and reads stance about as well as
the fine-tuned encoder at the CPU budget, and the two make different errors: their blend beats either alone
(reports/fusion-analysis.md, reports/stance-study.md). A model trained with ``train.tfidf_fusion`` therefore
carries a :class:`~rustance.train.baselines.TfidfBaseline` fitted on its training file, saved beside the weights
as ``tfidf.skops`` (skops: scikit-learn objects without pickle's code execution), and one weight per head in
``config.fusion``: each head's probability is ``w * network + (1 - w) * TF-IDF``, ``w`` chosen on dev
(:mod:`rustance.train.fusion`), the stance and sentiment blends then calibrated by ``config.fusion_temperatures``.
``w = 1`` is the network alone.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import torch

from rustance.errors import RustanceError

logger = logging.getLogger("rustance")

FILE = "tfidf.skops"
HEADS = ("topic", "stance", "sentiment")
#: the only type of this package in the file; scikit-learn, NumPy and SciPy types are trusted by skops itself
TRUSTED = ["rustance.train.baselines.TfidfBaseline"]


class LexicalModelError(RustanceError, RuntimeError):
    """The model's ``tfidf.skops`` is missing, unreadable or holds unexpected types."""


def check_weights(weights: dict | None) -> dict[str, float] | None:
    """``config.fusion`` as ``{head: weight}`` with every head present and each weight in [0, 1]."""
    if weights is None:
        return None
    if not isinstance(weights, dict) or set(weights) != set(HEADS):
        raise LexicalModelError(f"config.fusion must give a weight for each of {', '.join(HEADS)}, got {weights!r}")
    for head, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise LexicalModelError(f"config.fusion[{head!r}] must be a number in [0, 1], got {value!r}")
    return {head: float(weights[head]) for head in HEADS}


VECTORIZERS = ("words", "chars")  # the TfidfBaseline's vectorizers


def save_lexical(lexical, folder: str | Path) -> Path:
    """Write ``lexical`` (a fitted ``TfidfBaseline``) to ``folder/tfidf.skops``, compressed.

    The vectorizers' vocabularies (hundreds of thousands of n-grams) go in as one newline-joined string each,
    in column order, not as the dicts scikit-learn keeps (skops writes a dict entry by entry: minutes and
    hundreds of MB); their ``stop_words_`` (n-grams cut by ``min_df``/``max_features``, kept for introspection
    only) are left out. ``lexical`` itself is not changed."""
    import copy

    import skops.io as sio

    stored = copy.copy(lexical)
    vocabularies = {}
    for name in VECTORIZERS:
        vectorizer = copy.copy(getattr(lexical, name))
        vocabulary = vectorizer.__dict__.pop("vocabulary_")
        vectorizer.__dict__.pop("stop_words_", None)
        terms = sorted(vocabulary, key=vocabulary.get)
        if any("\n" in term for term in terms):  # vectorizers normalise whitespace, so this does not happen
            raise LexicalModelError(f"the {name} vocabulary has an n-gram with a newline; cannot be stored")
        vocabularies[name] = "\n".join(terms)
        setattr(stored, name, vectorizer)
    path = Path(folder) / FILE
    sio.dump({"model": stored, "vocabularies": vocabularies}, path, compression=zipfile.ZIP_DEFLATED)
    return path


def load_lexical(path: str | Path):
    """The ``TfidfBaseline`` in ``path`` (a ``tfidf.skops`` file). Refuses a file holding types other than
    scikit-learn's, NumPy's, SciPy's and :data:`TRUSTED` (skops checks this before building any object)."""
    import skops.io as sio

    path = Path(path)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a truncated zip, not a skops file ...
        raise LexicalModelError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    unexpected = sorted(set(untrusted) - set(TRUSTED))
    if unexpected:
        raise LexicalModelError(f"{path} holds types a rustance TF-IDF model does not have: {', '.join(unexpected)}; "
                                "not loaded")
    from rustance.train.baselines import TfidfBaseline

    try:
        content = sio.load(path, trusted=TRUSTED)
        if not isinstance(content, dict) or set(content) != {"model", "vocabularies"} \
                or not isinstance(content["model"], TfidfBaseline):
            raise LexicalModelError(f"{path} is not a rustance TF-IDF model file")
        lexical = content["model"]
        for name in VECTORIZERS:
            terms = content["vocabularies"][name].split("\n")
            getattr(lexical, name).vocabulary_ = {term: i for i, term in enumerate(terms)}
    except LexicalModelError:
        raise
    except Exception as exc:  # e.g. written by a scikit-learn version whose objects this one cannot rebuild
        raise LexicalModelError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    return lexical


def find_lexical(name_or_path: str | Path, **hub_kwargs):
    """Load the ``tfidf.skops`` of a model folder or Hub repository (downloaded like the weights)."""
    local = Path(name_or_path)
    if local.is_dir():
        path = local / FILE
        if not path.is_file():
            raise LexicalModelError(f"{local} has config.fusion but no {FILE}: the model's TF-IDF part is missing")
        return load_lexical(path)
    from transformers.utils import cached_file

    try:
        path = cached_file(str(name_or_path), FILE, **hub_kwargs)
    except OSError as exc:
        raise LexicalModelError(f"cannot get {FILE} of {name_or_path}: {exc}") from exc
    return load_lexical(path)


def blend(network: tuple, lexical: tuple, weights: dict[str, float], temperatures: dict[str, float] | None = None) -> tuple:
    """Per head, ``w * network + (1 - w) * lexical`` (``network`` torch tensors, ``lexical`` arrays of the same
    shapes, as :meth:`TfidfBaseline.probabilities` gives them); returns float32 tensors. ``temperatures``
    (``stance``, ``sentiment``) calibrate the blended distributions: ``softmax(log(p) / T)`` (an average of two
    distributions is less confident than either; T is fitted on dev, :mod:`rustance.train.fusion`)."""
    out = []
    for head, a, b in zip(HEADS, network, lexical):
        w = weights[head]
        b = torch.as_tensor(np.asarray(b), dtype=torch.float32)
        mixed = a.float() if w == 1 else w * a.float() + (1 - w) * b
        t = (temperatures or {}).get(head, 1.0)
        if head != "topic" and t != 1.0:
            mixed = torch.softmax(torch.log(mixed.clamp_min(1e-12)) / t, -1)
        out.append(mixed)
    return tuple(out)
