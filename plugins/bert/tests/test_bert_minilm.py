"""The real sentence-transformers/all-MiniLM-L6-v2 checkpoint loads and embeds sentences sensibly (no reference)."""

from __future__ import annotations

import torch
from bert_minilm import SENTENCES, minilm_folder, sentence_embeddings
from plugformers_bert.modeling_bert import BertModel
from plugformers_bert.tokenization_bert_fast import BertTokenizerFast

import plugformers


def test_loads_through_the_auto_classes_with_every_weight():
    folder = minilm_folder()
    model, info = plugformers.AutoModel.from_pretrained(folder, output_loading_info=True)
    tokenizer = plugformers.AutoTokenizer.from_pretrained(folder)
    assert type(model) is BertModel and type(tokenizer) is BertTokenizerFast
    # The file's stale position-id buffer is dropped quietly, as the reference does.
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 6, 12)
    assert 22_000_000 < model.num_parameters() < 23_000_000
    # bert-base-uncased's vocabulary: [CLS] hello world [SEP]; the tokenizer.json's fixed 128-token padding is
    # not applied unless asked for.
    assert tokenizer("Hello World!")["input_ids"] == [101, 7592, 2088, 999, 102]
    assert tokenizer("a", "b")["token_type_ids"] == [0, 0, 0, 1, 1]


def test_paraphrases_rank_above_unrelated_sentences():
    embeddings = sentence_embeddings(plugformers, minilm_folder(), SENTENCES)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)
    similarity = embeddings @ embeddings.T
    # (sentence, its paraphrase, unrelated sentences)
    for anchor, paraphrase, unrelated in ((0, 1, (2, 3, 5)), (3, 4, (0, 2, 5)), (2, 5, (0, 1, 3))):
        for other in unrelated:
            assert similarity[anchor, paraphrase] > similarity[anchor, other] + 0.1, (anchor, paraphrase, other)
    assert similarity[0, 1] > 0.7  # "A man is playing a guitar." ~ "Someone plays a guitar."


def test_padding_a_batch_does_not_change_an_embedding():
    folder = minilm_folder()
    alone = sentence_embeddings(plugformers, folder, SENTENCES[:1])
    batched = sentence_embeddings(plugformers, folder, SENTENCES)
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)
