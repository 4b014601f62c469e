"""intent: outputs always parse into a valid extraction; scoring; LoRA training on a real slice."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from movie_slices import small_lm

from pipelines.movies import llm
from pipelines.movies.intent import IntentParams, collate, encode_example, predict_lm, prompt, scores, train_lora
from pipelines.movies.intent_onnx import DecoderStep, check_step
from pipelines.movies.synth import gold
from serving.conversation.extraction import FIELDS, INTENTS, Extraction, parse

GOLD = Extraction("recommend", titles=("Heat",), genres=("Crime",), people=("Michael Mann",), themes=("gritty",))
ROWS = [  # synth rows (SYNTH_QUERIES fields the stage reads)
    {"text": "something like Heat but more gritty", "intent": "recommend", "titles": ["Heat"], "genres": [],
     "people": [], "themes": ["gritty"]},
    {"text": "who directed Vertigo?", "intent": "trivia", "titles": ["Vertigo"], "genres": [], "people": [],
     "themes": []},
    {"text": "hi there", "intent": "chitchat", "titles": [], "genres": [], "people": [], "themes": []},
    {"text": "I can't reset my password", "intent": "help", "titles": [], "genres": [], "people": [],
     "themes": []},
]
PARAMS = IntentParams(seed=1, threads=1, steps=2, batch_size=2, learning_rate=1e-3, lora_r=4, lora_alpha=8,
                      lora_targets=["q_proj", "v_proj"], lora_layers=2, max_new_tokens=24, eval_clean=0,
                      eval_noisy=0, eval_base=0, eval_onnx=0, few_shot=0)


def test_valid_output_parses_without_repair():
    assert parse(GOLD.to_json()) == (GOLD, False)


def test_every_truncation_and_corruption_still_parses_and_is_counted():
    text = GOLD.to_json()
    rng = random.Random(0)
    corrupted = [text[:cut] for cut in range(len(text))]
    corrupted += ["", "no json here", '{"intent": "shopping", "titles": "Heat"}', "[1, 2]", '{"intent": 3}',
                  text.replace('"Heat"', "42"), "Sure! " + text + " Hope that helps", text[:-1] + ', "x": [}']
    corrupted += ["".join(rng.sample(text, len(text))) for _ in range(50)]
    for raw in corrupted:
        extraction, repaired = parse(raw)
        assert extraction.intent in INTENTS and all(isinstance(v, str) for f in FIELDS for v in getattr(extraction, f))
        assert repaired, raw
    assert parse(text[: text.index('"people"')])[0].titles == ("Heat",)  # what was complete is kept


def test_scores_by_hand():
    expected = [GOLD, Extraction("chitchat"), Extraction("trivia", titles=("Vertigo",))]
    predicted = [dataclasses.replace(GOLD, people=()), Extraction("chitchat"), Extraction("recommend", titles=("vertigo",))]
    s = scores(predicted, expected)
    # intents: recommend P=1/2 R=1 -> 2/3; chitchat 1; trivia 0 -> macro 5/9
    assert s["intent_macro_f1"] == round(5 / 9, 4)
    assert s["titles_f1"] == 1.0 and s["people_f1"] == 0.0  # case-insensitive match; one missed person
    assert s["entity_micro_f1"] == round(2 * 4 / (2 * 4 + 0 + 1), 4)
    assert s["exact_match"] == round(1 / 3, 4)


@pytest.fixture(scope="module")
def lm():
    torch.set_num_threads(1)
    return llm.load(small_lm())


def test_loss_covers_only_the_answer_and_padding_is_on_the_left(lm):
    _, tokenizer = lm
    examples = [encode_example(tokenizer, row) for row in ROWS[:2]]
    batch = collate(examples, tokenizer.pad_token_id)
    for (_, labels), padded, row in zip(examples, batch["labels"], ROWS):
        answer = [t for t in labels if t != -100]
        assert tokenizer.decode(answer) == gold(row).to_sparse_json() + "<|im_end|>"
        assert padded.tolist()[-len(answer):] == answer
    assert (batch["attention_mask"][:, -1] == 1).all()


def test_exported_decoder_step_matches_transformers_with_and_without_cache(lm):
    model, tokenizer = lm
    ids = tokenizer(prompt(tokenizer, "a funny movie with Jim Carrey"), return_tensors="pt",
                    add_special_tokens=False)["input_ids"]
    assert check_step(DecoderStep(model).eval(), model, ids) < 1e-3


@pytest.mark.slow
def test_lora_trains_merges_and_its_outputs_parse(lm, tmp_path):
    model, tokenizer = lm
    merged = train_lora(model, tokenizer, ROWS, PARAMS, tmp_path / "loss.csv")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert len((tmp_path / "loss.csv").read_text().splitlines()) == 1 + PARAMS.steps
    predicted, stats = predict_lm(merged, tokenizer, [r["text"] for r in ROWS], [], PARAMS.max_new_tokens)
    assert len(predicted) == 4 and stats["queries"] == 4 and 0 <= stats["repaired"] <= 4
