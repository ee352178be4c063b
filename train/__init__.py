"""Training and evaluation: the fine-tuning loop, baselines and the evaluation harness."""
