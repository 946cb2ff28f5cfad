#!/usr/bin/env python
"""Tiny random sentence-transformers models of the BERT family (issue 21), with real tokenizers.

    .venv/bin/python scripts/make_family_st.py [--out tests/checkpoints]

Writes (each a few hundred KB, committed):
  st-tiny-roberta/     byte-level BPE (trained here with `tokenizers` on tests/data/sentences.json,
                       wrapped by transformers' RobertaTokenizer, which adds its RobertaProcessing
                       <s> A </s></s> B </s>), a random RobertaModel, mean pooling, Normalize, and a
                       "query: " prompt.
  st-tiny-distilbert/  WordPiece (trained here, lowercase; transformers' DistilBertTokenizer), a random
                       DistilBertModel, CLS pooling, Normalize.
  st-tiny-xlm-roberta/ a SentencePiece-style Unigram (trained here; transformers' XLMRobertaTokenizer),
                       a random XLMRobertaModel, mean pooling.
Every piece is built by the peers themselves (tokenizers, transformers, sentence-transformers
`SentenceTransformer(modules=...).save`), seeded, so re-running gives the same weights; tests
compare numpybert's tokens and embeddings with theirs (tests/test_family_text.py).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer, models  # noqa: E402
from tokenizers import ByteLevelBPETokenizer, SentencePieceUnigramTokenizer  # noqa: E402
from tokenizers.implementations import BertWordPieceTokenizer  # noqa: E402

from export_golden import seeded  # noqa: E402  (the same non-trivial LayerNorms and biases as the tiny BERTs)

REPO = Path(__file__).resolve().parents[1]
SEED = 0
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, initializer_range=0.2)


def corpus():
    data = json.loads((REPO / "tests/data/sentences.json").read_text())["sentences"]
    tricky = json.loads((REPO / "tests/data/tricky_texts.json").read_text())["single"]
    return data + [t for t in tricky if isinstance(t, str)]


def roberta_tokenizer():
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=400, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    with tempfile.TemporaryDirectory() as tmp:
        bpe.save_model(tmp)
        merges = [tuple(line.split()) for line in Path(tmp, "merges.txt").read_text().splitlines()[1:] if line]
    return transformers.RobertaTokenizer(vocab=bpe.get_vocab(), merges=merges)


def distilbert_tokenizer():
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus(), vocab_size=300, min_frequency=1, show_progress=False,
                                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    with tempfile.TemporaryDirectory() as tmp:
        wordpiece.save_model(tmp)
        return transformers.DistilBertTokenizer(vocab=str(Path(tmp, "vocab.txt")), do_lower_case=True)


def xlm_roberta_tokenizer():
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(corpus(), vocab_size=300, show_progress=False, unk_token="<unk>",
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    vocab = json.loads(unigram.to_str())["model"]["vocab"]
    return transformers.XLMRobertaTokenizer(vocab=[tuple(v) for v in vocab])


def make(name, tokenizer, config, model_class, pooling, out, prompts=None):
    torch.manual_seed(SEED)
    model = seeded(getattr(transformers, model_class)(config))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        transformer = models.Transformer(tmp, max_seq_length=48)
        st = SentenceTransformer(modules=[transformer, models.Pooling(32, pooling), models.Normalize()],
                                 prompts=prompts, device="cpu")
        target = Path(out) / name
        shutil.rmtree(target, ignore_errors=True)
        st.save(str(target))
    (target / "README.md").unlink(missing_ok=True)  # the generated model card: not needed, and dated
    print(f"wrote {target}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "checkpoints")
    args = parser.parse_args(argv)
    transformers.logging.set_verbosity_error()
    roberta = roberta_tokenizer()
    make("st-tiny-roberta", roberta, transformers.RobertaConfig(
        vocab_size=len(roberta), max_position_embeddings=66, type_vocab_size=1, pad_token_id=roberta.pad_token_id,
        bos_token_id=roberta.bos_token_id, eos_token_id=roberta.eos_token_id, layer_norm_eps=1e-5, **SIZES),
        "RobertaModel", "mean", args.out, prompts={"query": "query: "})
    distil = distilbert_tokenizer()
    make("st-tiny-distilbert", distil, transformers.DistilBertConfig(
        vocab_size=len(distil), dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64,
        pad_token_id=distil.pad_token_id, initializer_range=0.2), "DistilBertModel", "cls", args.out)
    xlmr = xlm_roberta_tokenizer()
    make("st-tiny-xlm-roberta", xlmr, transformers.XLMRobertaConfig(
        vocab_size=len(xlmr), max_position_embeddings=66, type_vocab_size=1, pad_token_id=xlmr.pad_token_id,
        bos_token_id=xlmr.bos_token_id, eos_token_id=xlmr.eos_token_id, layer_norm_eps=1e-5, **SIZES),
        "XLMRobertaModel", "mean", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
