"""rustance: stance toward topics and sentiment in Russian political news."""

from __future__ import annotations

__version__ = "0.3.0"
__all__ = ["load", "Classifier", "SentencePrediction", "TopicStance", "RustanceConfig", "RustanceModel", "load_model",
           "__version__"]


def __getattr__(name: str):
    # Lazy: `import rustance` stays cheap; torch and transformers load on first use.
    if name in ("load", "Classifier", "SentencePrediction", "TopicStance"):
        from rustance.inference import predictor

        return getattr(predictor, name)
    if name in ("RustanceConfig", "RustanceModel", "load_model"):  # importing rustance.model registers the Auto classes
        from rustance import model

        return getattr(model, name)
    raise AttributeError(f"module 'rustance' has no attribute {name!r}")
