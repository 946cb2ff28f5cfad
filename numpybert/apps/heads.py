"""BERT's task heads on top of the encoder: masked-LM, next-sentence prediction, classification.

    import numpybert
    from numpybert.apps import heads
    model = numpybert.load("path/to/bert-base-uncased")      # a BertForPreTraining checkpoint
    heads.fill_mask(model, "The capital of France is [MASK].", top_k=5)
    heads.next_sentence(model, "He went to the store.", "He bought a gallon of milk.")
    clf = numpybert.load("path/to/a-BertForSequenceClassification")
    heads.classify(clf, ["I loved it", "It was awful"])

The math is in `numpybert/reference.py` (`mlm_head`, `nsp_head`, `classifier_head`), run by the
model's engine (`model.engine`: fast or reference); this module finds each head's weights in
the loaded checkpoint, refuses clearly when they are absent, and turns logits into what
people read: tokens, labels and probabilities.

- MLM (`cls.predictions.*`): logits [B, T, V] at every position; the decoder is tied to the
  word embeddings (the loader ties it when the file omits it).
- NSP (`cls.seq_relationship.*`): logits [B, 2] on the pooled output; label 0 = "B follows A".
- Sequence classification (`classifier.*`): logits [B, num_labels] on the pooled output, label
  names from config.json's id2label; softmax, or sigmoid when config.json says
  problem_type "multi_label_classification".
"""

import os

import numpy as np

from ..errors import InputValueError, MissingWeightsError
from ..loading.config import read_json_object
from ..reference import softmax
from ..util import positive_int

# head -> (path in model.params, checkpoint names, what it is, architectures that carry it)
HEADS = {
    "mlm": (("cls", "predictions"), "cls.predictions.*", "masked-LM head",
            "BertForPreTraining or BertForMaskedLM"),
    "nsp": (("cls", "seq_relationship"), "cls.seq_relationship.*", "next-sentence-prediction head",
            "BertForPreTraining or BertForNextSentencePrediction"),
    "classifier": (("classifier",), "classifier.*", "sequence-classification head",
                   "BertForSequenceClassification (with id2label in config.json)"),
}
FUNCTIONS_TO_APPLY = (None, "softmax", "sigmoid", "none")  # classify's, as transformers' pipeline
NSP_LABELS = ("is_next", "not_next")  # index 0 = "B follows A", as in BERT's pre-training
# The family's heads are mapped onto BERT's names by the loader; their activations and the
# classifier's kind come from the family registry (numpybert/loading/family.py, `config.family`).


def head_params(model, head: str) -> dict:
    """The parameters of one head, or a MissingWeightsError naming what the checkpoint lacks."""
    path, names, what, archs = HEADS[head]
    params = _lookup(model.params, path)
    if not params:
        raise MissingWeightsError(f"{model.model_dir}: the checkpoint has no {what} ({names}); "
                                  f"it is saved by {archs} checkpoints. Heads present: {available_heads(model)}")
    return params


def available_heads(model) -> list:
    """Names of the heads this checkpoint carries ("mlm", "nsp", "classifier")."""
    return [head for head, (path, *_) in HEADS.items() if _lookup(model.params, path)]


def _lookup(params, path):
    for key in path:
        params = params.get(key) if isinstance(params, dict) else None
    return params


# ----------------------------------------------------------------------------- logits

def mlm_logits(model, input_ids, attention_mask=None, token_type_ids=None, position_ids=None) -> np.ndarray:
    """Masked-LM logits [B, T, V] at every position (BertForPreTraining's `prediction_logits`)."""
    params = head_params(model, "mlm")
    out = model(input_ids, attention_mask, token_type_ids, position_ids)
    return model.engine.mlm_head(out.last_hidden_state, **params, act=mlm_act(model.config),
                                 eps=model.config.layer_norm_eps)


def mlm_act(config) -> str:
    """The masked-LM head's activation: the config's, except where the family hard-codes one
    (RoBERTa's lm_head, ELECTRA's generator, MPNet's lm_head: exact gelu)."""
    return config.family.mlm_act or config.hidden_act


def nsp_logits(model, input_ids, attention_mask=None, token_type_ids=None, position_ids=None) -> np.ndarray:
    """Next-sentence logits [B, 2] on the pooled output (`seq_relationship_logits`); 0 = is next."""
    params = head_params(model, "nsp")
    out = model(input_ids, attention_mask, token_type_ids, position_ids)
    return model.engine.nsp_head(out.pooler_output, params)


def classifier_logits(model, input_ids, attention_mask=None, token_type_ids=None, position_ids=None) -> np.ndarray:
    """BertForSequenceClassification's logits [B, num_labels] on the pooled output."""
    params = head_params(model, "classifier")
    out = model(input_ids, attention_mask, token_type_ids, position_ids)
    family = model.config.family
    if family.classifier == "first-token":  # the family's heads read the first token, not the pooler
        return model.engine.first_token_classifier(out.last_hidden_state, **params, act=family.classifier_act)
    return model.engine.classifier_head(out.pooler_output, params)


# ----------------------------------------------------------------------------- text in, answers out

def fill_mask(model, text: str, top_k: int = 5) -> list:
    """The top_k tokens for each [MASK] in `text`, as HF's fill-mask pipeline scores them.

    Returns one list per [MASK] (in order), each of top_k dicts {"token", "token_id", "score"},
    best first; score is the softmax probability over the model's whole vocabulary (vocab_size).
    """
    positive_int("top_k", top_k)
    params = head_params(model, "mlm")
    tokenizer = model.tokenizer
    batch = model.tokenize([text])
    positions = _mask_positions(batch["input_ids"][0], tokenizer.mask_token_id, text)
    hidden = model(**batch).last_hidden_state[0, positions]  # [K, H]: only the masked positions
    logits = model.engine.mlm_head(hidden, **params, act=mlm_act(model.config), eps=model.config.layer_norm_eps)
    probs = softmax(logits.astype(np.float64))  # [K, V]; float64 so tiny probabilities keep digits
    return [_top_tokens(row, top_k, tokenizer) for row in probs]


def _mask_positions(ids, mask_token_id, text) -> np.ndarray:
    if mask_token_id is None:
        raise InputValueError("the tokenizer has no [MASK] token, so there is nothing to fill")
    positions = np.flatnonzero(ids == mask_token_id)
    if positions.size == 0:
        raise InputValueError(f"no [MASK] token in {text!r}; write [MASK] where a word should be predicted")
    return positions


def _top_tokens(probs, top_k, tokenizer) -> list:
    """The top_k ids by probability. An id past the tokenizer's vocabulary (models whose vocab_size
    was padded, e.g. to a multiple of 8) has no token string: token None."""
    best = np.argsort(-probs, kind="stable")[:top_k]
    return [{"token": tokenizer.convert_ids_to_tokens([i])[0] if i < tokenizer.vocab_size else None,
             "token_id": int(i), "score": float(probs[i])} for i in best]


def next_sentence(model, text_a: str, text_b: str) -> dict:
    """P(B follows A) from the NSP head: {"is_next": p, "not_next": 1 - p}."""
    batch = model.tokenize([text_a], [text_b])
    probs = softmax(nsp_logits(model, **batch).astype(np.float64))[0]
    return {label: float(p) for label, p in zip(NSP_LABELS, probs)}


def classify(model, texts, text_pairs=None, *, function_to_apply=None, max_length=None) -> list:
    """Label probabilities for each text (or pair): one list per text of {"label", "score"}, best first.

    Labels come from config.json's id2label. Scores are a softmax over the labels, or an independent
    sigmoid per label when config.json says problem_type "multi_label_classification".
    function_to_apply: None (that default), "softmax", "sigmoid" or "none" (the logits), as transformers'
    text-classification pipeline. max_length: texts (pairs: longest_first) cut to that many tokens.
    """
    if function_to_apply not in FUNCTIONS_TO_APPLY:
        raise InputValueError(f"function_to_apply={function_to_apply!r}: expected one of {FUNCTIONS_TO_APPLY}")
    batch = model.tokenize(texts, text_pairs, max_length=max_length, truncation=max_length is not None or None)
    logits = classifier_logits(model, **batch).astype(np.float64)
    if function_to_apply is None:
        multi = _problem_type(model) == "multi_label_classification"
        function_to_apply = "sigmoid" if multi else "softmax"
    if function_to_apply == "sigmoid":
        probs = 1.0 / (1.0 + np.exp(-logits))
    else:
        probs = softmax(logits) if function_to_apply == "softmax" else logits
    labels = [model.config.id2label[i] for i in range(logits.shape[1])]
    return [[{"label": labels[i], "score": float(row[i])} for i in np.argsort(-row, kind="stable")] for row in probs]


def _problem_type(model):
    """config.json's problem_type (BertConfig does not keep it): how scores are made from logits."""
    path = os.path.join(model.model_dir or "", "config.json")
    return read_json_object(path, "config.json", absent={}).get("problem_type")
