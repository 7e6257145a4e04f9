"""A small GPT-style causal language model (pre-norm blocks, as in nanoGPT) on synthetic tokens."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from minicluster.core import flops
from minicluster.core.config import TransformerConfig
from minicluster.rank.workloads import Workload, linear_weights, token_batches


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.Sequential(
            *[_Block(cfg.d_model, cfg.n_heads) for _ in range(cfg.n_layers)]
        )
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.blocks(self.tok(idx) + self.pos(pos))
        return self.head(self.ln_f(x))


def _lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def build_transformer(cfg: TransformerConfig, seed: int, device: torch.device) -> Workload:
    torch.manual_seed(seed)
    model = TinyGPT(cfg).to(device)

    make_batch = token_batches(cfg.vocab_size, cfg.per_rank_batch, cfg.seq_len, seed, device)

    per_sample, how = flops.decoder_flops_per_sample(
        linear_weights(model), cfg.n_layers, cfg.d_model, cfg.seq_len
    )
    return Workload(
        name="transformer",
        model=model,
        make_batch=make_batch,
        loss_fn=_lm_loss,
        samples_per_rank=cfg.per_rank_batch,
        tokens_per_rank=cfg.per_rank_batch * cfg.seq_len,
        seq_len=cfg.seq_len,
        flops_per_sample=per_sample,
        flops_method=how,
    )
