#!/usr/bin/env python
"""numpybert vs torch eager: the benchmark of issue 5 (`numpybert bench` runs the same).

    .venv/bin/python scripts/make_random_bert.py --size base --out /tmp/random-bert-base
    .venv/bin/python scripts/bench.py --base /tmp/random-bert-base --threads 2 --plot

The measuring code is numpybert/bench.py. This script adds what numpybert must not import:
the torch worker (`--worker torch MODEL B T THREADS WARMUP`, driven over stdin by the
orchestrator) and torch's cold start (`--cold torch MODEL`).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def torch_worker(model_dir, B, T, threads, warmup):
    import torch
    import transformers
    from numpybert.bench import make_inputs, serve
    torch.set_num_threads(threads)
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    inputs = {k: torch.from_numpy(v) for k, v in make_inputs(model.config.vocab_size, B, T).items()}

    def forward():
        with torch.inference_mode():
            return model(**inputs)

    serve(forward, {"engine": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
                    "attn_implementation": model.config._attn_implementation}, warmup)


def torch_cold(model_dir):
    """What a torch user pays in a new process: import, load, tokenize one sentence, one forward."""
    import torch
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.inference_mode():
        model(**tokenizer(["The quick brown fox jumps over the lazy dog."], return_tensors="pt"))


def st_corpus(model_dir, n, threads):
    """sentence-transformers' encode on numpybert.bench.make_corpus's texts: one JSON line."""
    import json
    import time
    import torch
    from sentence_transformers import SentenceTransformer
    from numpybert.bench import make_corpus
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    texts = make_corpus(model_dir, n)
    model.encode(texts[:64])  # warm up
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32)
    print(json.dumps({"engine": "sentence-transformers", "seconds": time.perf_counter() - t0, "texts": len(texts)}))


def export_onnx(model_dir, out):
    """BertModel -> ONNX for the ONNX Runtime column (needs the onnx package): transformers 5 needs
    keyword inputs (a wrapper module) and the TorchScript exporter (dynamo=False), opset 17."""
    import torch
    import transformers
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()

    class Keywords(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(Keywords(model), (ids, ids, torch.zeros_like(ids)), out, dynamo=False, opset_version=17,
                      input_names=names, output_names=["last_hidden_state"],
                      dynamic_axes={n: axes for n in names + ["last_hidden_state"]})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--export-onnx"]:
        return export_onnx(argv[1], argv[2])
    if argv[:2] == ["--corpus", "st"]:
        return st_corpus(argv[2], int(argv[3]), int(argv[4]))
    if argv[:2] == ["--worker", "torch"]:
        return torch_worker(argv[2], *map(int, argv[3:7]))
    if argv[:2] == ["--cold", "torch"]:
        return torch_cold(argv[2])
    from numpybert.cli import bench as command
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv), torch_worker=os.path.abspath(__file__))


if __name__ == "__main__":
    sys.exit(main())
