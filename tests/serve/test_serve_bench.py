"""`python -m numpybert.serve.bench` runs end to end (small settings, numpybert alone: the peer,
infinity-emb, lives in its own venv and is not part of the test environment) and writes every
number docs/serving.md reports."""

import json
import subprocess
import sys


def test_bench_measures_every_reported_number(minilm_dir, tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "numpybert.serve.bench", "--model", str(minilm_dir), "--texts", "16",
           "--requests-per-client", "1", "--lone-requests", "5", "--concurrency", "1,2", "--threads", "1",
           "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    server = result["servers"]["numpybert serve"]
    for n in (1, 2):
        level = server[f"c{n}"]
        assert level["errors"] == 0 and level["requests"] == 64  # at least 64 requests per level
        assert 0 < level["p50_ms"] <= level["p99_ms"] and level["texts_per_s"] > 0
    assert 0 < server["first_200_health_s"] < 60 and 0 < server["first_200_embeddings_s"] < 60
    assert 50 < server["rss_mb"] <= server["peak_rss_mb"] < 2000
    assert result["offline"]["encode_texts_per_s"] > 0 and result["offline"]["bare_forward_short_ms"] > 0
    assert set(result["ratios"]) == {"throughput_vs_offline", "lone_p50_vs_forward_plus_3ms", "first_200_embeddings_s"}
    assert "| numpybert serve | 2 |" in r.stdout
