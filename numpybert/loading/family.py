"""The BERT family registry: every way a family member differs from BERT, in one place.

One `Family` record per config.json `model_type` numpybert computes (bert, roberta, xlm-roberta,
distilbert, electra, mpnet). Everything else in numpybert asks this module: the config reader
(field names and fixed values), the checkpoint loader (prefix, name map, ignored heads, pooler),
the inputs (position ids, token types), the heads (activations, classifier kind), the teaching
text and the torch bridge (transformers' class names). No other module names a model type.

The textbook (numpybert/reference.py) stays BERT: a family difference reaches it as prepared
input (position ids made here, `position_ids`), as weights mapped onto BERT's names, or as one
plainly commented line (ELECTRA's projection, MPNet's relative position bias).

Other formats plug in as one more name map: a reader produces config.json's fields (HF form, with
`model_type`) and {name: array} under the checkpoint's own names, or under names it maps with
`Family.canonical`-style pairs of its own, and hands them to `loading.checkpoint.load_tensors`
(see docs/bert-family.md, "Adding a format").
"""

import dataclasses

import numpy as np

DEFAULT = "bert"  # config.json without model_type: BERT, as transformers' old checkpoints
# Module renames shared by RoBERTa-style heads (lm_head.* -> BERT's cls.predictions.*).
_LM_HEAD = (("lm_head.dense.", "cls.predictions.transform.dense."),
            ("lm_head.layer_norm.", "cls.predictions.transform.LayerNorm."),
            ("lm_head.decoder.", "cls.predictions.decoder."), ("lm_head.bias", "cls.predictions.bias"))


@dataclasses.dataclass(frozen=True)
class Family:
    """What one model_type is, as differences from BERT (the defaults are BERT's)."""
    model_type: str
    name: str  # how people write it: "RoBERTa"
    base_class: str  # transformers' base model class
    modeling: str  # transformers' module: transformers.models.<modeling>
    prefix: str  # task-class checkpoints prefix the base model's names with this
    names: tuple = ()  # (theirs, BERT's) renames; a head's (cls.*, classifier.*) is matched as a prefix, once
    config_fields: tuple = ()  # (their config.json field, BertConfig's)
    config_fixed: tuple = ()  # (field, value) the modeling code hard-codes, whatever config.json says
    config_defaults: tuple = ()  # (field, value) when config.json does not say (their config class's default)
    config_own: tuple = ()  # BertConfig fields only this member reads (dropped from the others' config.json)
    ignored: tuple = ()  # (name prefix, why): heads transformers has and numpybert does not compute
    positions_from_ids: bool = False  # fairseq's positions: real tokens count from padding_idx + 1
    fixed_padding_idx: int | None = None  # padding_idx hard-coded by the modeling code (else pad_token_id)
    token_types: bool = True  # a token-type (segment) table
    pooler: bool = True  # a BertPooler may be stored
    nsp: bool = False  # BERT's next-sentence head
    mlm_act: str | None = None  # the masked-LM head's activation (None: config.hidden_act)
    classifier: str = "pooled"  # "pooled": one Linear on pooled_output; "first-token": dense, act, out_proj
    classifier_act: str | None = None  # the first-token classifier's activation
    relative_attention: bool = False  # MPNet: T5-style bucketed relative position bias on every layer's scores
    trains: bool = True  # value_and_grad follows its differences (apps/train.py); "pretraining" also needs nsp
    instead_of_pooler: str = ""  # what its classifier reads instead of a pooler (explain)

    def heads(self) -> tuple:
        """transformers' task classes numpybert computes the logits of."""
        return (f"{self.base_class[:-5]}ForMaskedLM", f"{self.base_class[:-5]}ForSequenceClassification")

    def no_pooler_message(self, model_dir) -> str:
        return (f"{model_dir}: {self.model_type} has no pooler (transformers' {self.base_class} returns no "
                "pooler_output), so there is no pooled_output. Its classifier reads last_hidden_state[:, 0]; "
                "for sentence embeddings use the mean of last_hidden_state over real tokens.")


_ROBERTA = dict(names=_LM_HEAD, positions_from_ids=True, mlm_act="gelu", classifier="first-token",
                classifier_act="tanh",
                instead_of_pooler="RoBERTa's classifier does not use the pooler at all: RobertaClassificationHead "
                "takes the <s> vector, last_hidden_state[:, 0], through dense -> tanh -> out_proj (its own two "
                "layers, numpybert.reference.first_token_classifier); sentence-transformers RoBERTa models pool "
                "the token vectors (mean).")

FAMILIES = {f.model_type: f for f in (
    Family("bert", "BERT", "BertModel", "bert.modeling_bert", "bert.", nsp=True,
           instead_of_pooler="BertForSequenceClassification reads the pooler; without one, use last_hidden_state "
           "(e.g. its mean over real tokens)."),
    Family("roberta", "RoBERTa", "RobertaModel", "roberta.modeling_roberta", "roberta.", **_ROBERTA),
    Family("xlm-roberta", "XLM-RoBERTa", "XLMRobertaModel", "xlm_roberta.modeling_xlm_roberta", "roberta.",
           **_ROBERTA),
    Family("distilbert", "DistilBERT", "DistilBertModel", "distilbert.modeling_distilbert", "distilbert.",
           names=(("transformer.layer.", "encoder.layer."), (".attention.q_lin.", ".attention.self.query."),
                  (".attention.k_lin.", ".attention.self.key."), (".attention.v_lin.", ".attention.self.value."),
                  (".attention.out_lin.", ".attention.output.dense."),
                  (".sa_layer_norm.", ".attention.output.LayerNorm."), (".ffn.lin1.", ".intermediate.dense."),
                  (".ffn.lin2.", ".output.dense."), (".output_layer_norm.", ".output.LayerNorm."),
                  ("vocab_transform.", "cls.predictions.transform.dense."),
                  ("vocab_layer_norm.", "cls.predictions.transform.LayerNorm."),
                  ("vocab_projector.weight", "cls.predictions.decoder.weight"),
                  ("vocab_projector.bias", "cls.predictions.bias"),
                  ("pre_classifier.", "classifier.dense."), ("classifier.", "classifier.out_proj.")),
           config_fields=(("dim", "hidden_size"), ("n_layers", "num_hidden_layers"),
                          ("n_heads", "num_attention_heads"), ("hidden_dim", "intermediate_size"),
                          ("activation", "hidden_act")),
           config_fixed=(("layer_norm_eps", 1e-12), ("type_vocab_size", 0)),  # hard-coded in modeling_distilbert.py
           config_own=("sinusoidal_pos_embds",),
           token_types=False, pooler=False, classifier="first-token", classifier_act="relu",
           instead_of_pooler="DistilBERT has no pooler by design (it was distilled without next-sentence "
           "prediction): DistilBertForSequenceClassification takes the [CLS] vector, last_hidden_state[:, 0], "
           "through pre_classifier -> ReLU -> classifier; sentence-transformers DistilBERT models pool the token "
           "vectors (mean or CLS)."),
    Family("electra", "ELECTRA", "ElectraModel", "electra.modeling_electra", "electra.",
           names=(("generator_predictions.dense.", "cls.predictions.transform.dense."),
                  ("generator_predictions.LayerNorm.", "cls.predictions.transform.LayerNorm."),
                  ("generator_lm_head.weight", "cls.predictions.decoder.weight"),
                  ("generator_lm_head.bias", "cls.predictions.bias")),
           config_defaults=(("embedding_size", 128),), config_own=("embedding_size",),  # ElectraConfig's default
           ignored=(("discriminator_predictions.", "ELECTRA's replaced-token-detection head (not computed by "
                     "numpybert)"),),
           pooler=False, mlm_act="gelu", classifier="first-token", classifier_act="gelu",
           instead_of_pooler="ELECTRA has no pooler (its discriminator is trained per token): "
           "ElectraClassificationHead takes the first token's vector, last_hidden_state[:, 0], through dense -> "
           "gelu -> out_proj."),
    Family("mpnet", "MPNet", "MPNetModel", "mpnet.modeling_mpnet", "mpnet.",
           names=((".attention.attn.q.", ".attention.self.query."), (".attention.attn.k.", ".attention.self.key."),
                  (".attention.attn.v.", ".attention.self.value."), (".attention.attn.o.", ".attention.output.dense."),
                  (".attention.LayerNorm.", ".attention.output.LayerNorm."), *_LM_HEAD),
           config_fixed=(("type_vocab_size", 0),), config_defaults=(("relative_attention_num_buckets", 32),),
           config_own=("relative_attention_num_buckets",),
           positions_from_ids=True, fixed_padding_idx=1,  # MPNetEmbeddings.padding_idx = 1, whatever pad_token_id
           token_types=False, mlm_act="gelu", classifier="first-token", classifier_act="tanh",
           relative_attention=True, trains=False,
           instead_of_pooler="MPNet has a pooler (tanh(W·h_<s> + b), as BERT's), but MPNetForSequenceClassification "
           "does not use it: MPNetClassificationHead takes the <s> vector, last_hidden_state[:, 0], through dense "
           "-> tanh -> out_proj; sentence-transformers' all-mpnet-base-v2 pools the token vectors (mean)."),
)}

OWN_FIELDS = {field for f in FAMILIES.values() for field in f.config_own}

NOT_SUPPORTED = {  # encoders people try, and why numpybert does not compute them
    "albert": "ALBERT shares one layer's weights across layers and factorises the embeddings",
    "deberta": "DeBERTa uses disentangled relative-position attention",
    "deberta-v2": "DeBERTa-v2/v3 uses disentangled relative-position attention",
    "camembert": "CamemBERT checkpoints use their own names (camembert.*); not mapped yet",
    "xlm": "XLM is a different architecture", "longformer": "Longformer uses sliding-window attention",
    "bigbird": "BigBird uses sparse attention", "nomic_bert": "NomicBERT uses rotary positions and SwiGLU",
    "modernbert": "ModernBERT uses rotary positions, pre-LN and GeGLU",
}


# Other formats' names for the members (their readers ask here, so no other module spells a model type).
# llama.cpp's GGUF (numpybert/loading/gguf.py): general.architecture -> (the member a file with a token-type
# table is, the member one without is: llama.cpp writes DistilBERT as a "bert" file with no token_types tensor);
# tokenizer.ggml.model "bert" is a WordPiece vocabulary (numpybert/text/gguf_vocab.py).
GGUF_ARCHITECTURES = {"bert": ("bert", "distilbert")}
GGUF_WORDPIECE = "bert"
# llama.cpp's converter writes RoBERTa as a "bert" file too (conversion/bert.py RobertaModel): its byte-level
# BPE as tokenizer.ggml.model "gpt2" (tokens + merges), and the position table cut by pad_token_id + 1 rows.
# tokenizer.ggml.model -> the member such a file is (it overrides the token-type rule above).
GGUF_BYTE_BPE = "gpt2"
GGUF_TOKENIZER_MEMBERS = {GGUF_BYTE_BPE: "roberta"}
GGUF_REFUSED_TOKENIZERS = {  # tokenizer.ggml.model -> why numpybert does not rebuild it (one clause)
    "t5": "XLM-RoBERTa's SentencePiece Unigram with its precompiled normalizer (the precompiled_charsmap) is not "
          "rebuilt: no file made here could check its ids against the original tokenizer.json",
}
# keras-hub's BertBackbone presets (numpybert/loading/keras.py) are BERT.
KERAS_BACKBONE = DEFAULT

def get(model_type) -> Family:
    """The record of a model_type numpybert computes; KeyError otherwise (see `refusal`)."""
    return FAMILIES[model_type]


def refusal(model_type) -> str:
    """Why a model_type is refused, as the end of a one-line error."""
    computed = ", ".join(FAMILIES)
    if isinstance(model_type, str) and model_type in NOT_SUPPORTED:
        return f"model_type {model_type!r} is not supported: {NOT_SUPPORTED[model_type]} (numpybert computes {computed})"
    return f"config field model_type={model_type!r} is not supported (numpybert computes {computed})"


def by_base_class(class_name) -> Family | None:
    """The record whose transformers base class or task classes include `class_name`."""
    return next((f for f in FAMILIES.values() if class_name == f.base_class or class_name in f.heads()), None)


# ----------------------------------------------------------------------------- prepared inputs

def position_ids(input_ids, shape, padding_idx=None):
    """Each token's position, what BERT's embeddings look up: 0, 1, ..., T-1 (BERT, DistilBERT,
    ELECTRA). RoBERTa / XLM-R / MPNet (padding_idx not None) count real tokens from padding_idx + 1 and
    give padding padding_idx (fairseq's make_positions); without input_ids (inputs_embeds) they are
    sequential from padding_idx + 1. Both engines receive these; they are inputs, not model math."""
    if padding_idx is None or input_ids is None:
        start = 0 if padding_idx is None else padding_idx + 1
        return np.broadcast_to(np.arange(start, start + shape[1]), shape)  # [T] -> [B, T]
    real = input_ids != padding_idx  # [B, T]
    return np.cumsum(real, axis=1) * real + padding_idx  # [B, T]: p+1, p+2, ... on real tokens, p on padding
