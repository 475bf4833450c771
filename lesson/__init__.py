"""The LSTM-vs-GRU lesson's study and model inspection (../shared/docs/lstm-gru-lesson.md)."""
