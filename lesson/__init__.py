"""The LSTM-vs-GRU lesson's study and model inspection (docs/lesson.md)."""
