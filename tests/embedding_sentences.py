"""Sentences of varied length (2 to over 300 tokens) for the embedding tests on the real all-MiniLM-L6-v2 folder."""

from __future__ import annotations

_BASE = [
    "Hi.",
    "See the guide.",
    "A man is playing a guitar.",
    "Someone plays a guitar on the street corner.",
    "The stock market fell sharply today after the central bank raised interest rates.",
    "A woman is slicing an onion in the kitchen while the soup boils.",
    "Install the package, then run the command line tool with the --help option to see every switch.",
    "Checkpoints load both ways with identical outputs, so a folder written by one library opens in the other.",
    "¿Dónde está la estación de tren más cercana?",
    "O modelo foi treinado em milhares de frases em português.",
    "東京は日本の首都です。",
    "Error: the file config.json was not found in /tmp/model; pass a folder that holds one.",
    "42",
    "The quick brown fox jumps over the lazy dog, again and again, until the dog finally wakes up and barks.",
    "Vaccines were tested on thousands of volunteers before the regulator approved them for general use.",
    "Batch inference sorts texts by length so that a batch holds texts of similar length and little padding.",
    "user@example.com wrote: please send the invoice by Friday, thanks!",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "The mitochondria is the powerhouse of the cell.",
    "def add(a, b): return a + b",
    "Rain is expected tomorrow in the north, with sunny spells in the south by the afternoon.",
    "I loved this movie. The acting was superb and the soundtrack unforgettable.",
    "Terrible service, cold food, and we waited an hour for the bill.",
    "Quantum computers use qubits, which can hold a superposition of states.",
    "The committee will meet on Tuesday to discuss the budget for next year.",
    "Please restart the server.",
    "Deep learning models learn representations from raw data with many layers of computation.",
    "A cat sits on the mat.",
    "The cat is sitting on a mat.",
    "Machine translation has improved dramatically over the last decade thanks to attention-based models.",
    "OK",
]
#: ``_BASE`` plus a paragraph, and one text longer than the folder's 256-token limit (truncated the same way).
SENTENCES = [
    *_BASE,
    " ".join(_BASE[4:16]),
    " ".join(_BASE * 3),
]
