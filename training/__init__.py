"""Data loading, tokenizer and model training, evaluation and archiving into model_store/."""
