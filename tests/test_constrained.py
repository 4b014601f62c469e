"""Entity-constrained decoding: the JSON scanner, the name constraint, and the decoder loop using them."""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from serving.conversation.constrained import EntityConstraint, TokenTexts, entity_lists, open_entity
from serving.conversation.intent_model import IntentModel, IntentModelConfig

NAMES = {"titles": ["Heat", "Heathers", 'Waiting for "Superman"'], "people": ["Embeth Davidtz", "Al Pacino"]}
START = '{"intent":"recommend","titles":['


def test_entity_lists_reads_closed_and_open_strings():
    text = '{"intent":"recommend","titles":["Heat","A]b"],"people":["Al P'
    assert list(entity_lists(text)) == [("titles", ["Heat", "A]b"], None), ("people", [], "Al P")]
    assert open_entity(text) == ("people", "Al P")
    assert open_entity('{"intent":"recommend","titles":["Heat",') is None
    assert open_entity('{"intent":"recommend"') is None


def test_a_string_may_only_grow_towards_a_name_and_close_on_a_whole_one():
    constraint = EntityConstraint(NAMES)
    assert constraint.allows(START, '"He') and not constraint.allows(START, '"Hx')
    assert constraint.allows(START + '"Heat', '","') and not constraint.allows(START + '"Hea', '"]')
    assert constraint.allows(START + '"Waiting for \\"Sup', 'erman\\""]')  # names are compared JSON-escaped
    assert constraint.allows('{"intent":"recommend","genres":["Anything', "x")  # fields without names are free


def test_restricted_narrows_only_fields_with_known_mentions():
    constraint = EntityConstraint(NAMES).restricted({"titles": ["Heathers", "Not In The Catalog"], "people": []})
    assert constraint.names["titles"] == ["Heathers"]
    assert constraint.names["people"] == sorted(NAMES["people"])
    assert constraint.completions("titles", "Hea", limit=10) == ["thers"]
    assert EntityConstraint(NAMES).completions("titles", "", limit=2) is None


def test_token_texts_spell_a_remainder_and_its_closing_quote():
    texts = TokenTexts(["th", "the", "ers", 'ers"', 'ers"]}', "x", "t"])
    assert {texts.texts[i] for i in texts.continuing(["thers"])} == {"t", "th", "the"}
    assert {texts.texts[i] for i in texts.continuing(["ers"])} == {'ers"', 'ers"]}', "ers"}


MISSPELT = '{"intent":"recommend","people":["Embbeth Davidtz"]}'
RIGHT = '{"intent":"recommend","people":["Embeth Davidtz"]}'
STOP = "<|im_end|>"


def char_tokenizer() -> Tokenizer:
    """One token per character, plus a few multi-character ones a BPE vocabulary would have."""
    pieces = sorted(set(MISSPELT + RIGHT + "{}text")) + ["Embb", "Emb", "eth", " Davidtz", '"]}', STOP]
    tokenizer = Tokenizer(models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token=STOP))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


class ScriptedSession:
    """A decoder step that always prefers continuing MISSPELT, with RIGHT as its second choice."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer, self.answer, self.started = tokenizer, [], False
        self.texts = [tokenizer.decode([i]) for i in range(tokenizer.get_vocab_size())]
        self.stop = tokenizer.token_to_id(STOP)

    def run(self, _outputs, feeds):
        if self.started:
            self.answer += feeds["input_ids"][0].tolist()
        self.started = True
        so_far = self.tokenizer.decode(self.answer)
        logits = np.zeros(len(self.texts), dtype=np.float32)
        for i, text in enumerate(self.texts):
            if i != self.stop and MISSPELT.startswith(so_far + text):
                logits[i] = 10 + len(text)
            elif i != self.stop and RIGHT.startswith(so_far + text):
                logits[i] = 5 + len(text)
        logits[self.stop] = 50 if so_far in (MISSPELT, RIGHT) else -1
        cache = np.zeros((1, 1, 1, 0, 1), dtype=np.float32)
        return logits[None], cache, cache


def model() -> IntentModel:
    tokenizer = char_tokenizer()
    config = IntentModelConfig(prompt_template="{text}", stop_ids=[tokenizer.token_to_id(STOP)], layers=1,
                               kv_heads=1, head_dim=1, max_new_tokens=80)
    return IntentModel(ScriptedSession(tokenizer), tokenizer, config)  # type: ignore[arg-type]


def test_constrained_decoding_writes_the_catalog_name_free_decoding_misspells():
    assert model().generate("text") == MISSPELT
    constraint = EntityConstraint({"people": ["Embeth Davidtz", "Al Pacino"]})
    assert model().generate("text", constraint) == RIGHT
