"""A Llama-style decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention) on synthetic tokens.

Module names follow torchtitan's llama3 (`tok_embeddings`, `layers.N.attention.wq`,
`feed_forward.w1`, `norm`, `output`), so its tensor-parallel plan (`rank.layouts`) reads the same.
Attention takes its head count from the projection's output width, so it runs unchanged on a
tensor-parallel rank that holds only its share of the heads.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from minicluster.core import flops
from minicluster.core.config import LlamaConfig
from minicluster.rank.workloads import Workload, linear_weights, token_batches


def rope_tables(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of RoPE's rotation angles, (seq_len, head_dim / 2) each (Su et al. 2021)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angles = torch.outer(torch.arange(seq_len).float(), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of `x` (batch, seq, heads, head_dim); real arithmetic, so it
    runs on any dtype and under DTensor (no complex tensors)."""
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)
    return out.type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.head_dim = cfg.dim // cfg.n_heads
        self.n_rep = cfg.n_heads // cfg.n_kv_heads
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * self.head_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        # -1 heads: a tensor-parallel rank holds n_heads / tp of them (and of the kv heads).
        q = self.wq(x).view(b, t, -1, self.head_dim)
        k = self.wk(x).view(b, t, -1, self.head_dim)
        v = self.wv(x).view(b, t, -1, self.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        k = k.repeat_interleave(self.n_rep, dim=1)  # grouped-query: each kv head serves n_rep
        v = v.repeat_interleave(self.n_rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x) (Shazeer 2020)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MoE(nn.Module):
    """Mixture of SwiGLU experts: a router sends each token to its top-k experts, whose outputs
    are summed with the renormalised router weights (Shazeer et al. 2017, Mixtral's routing).

    Expert parallel (`shard_experts`): this rank keeps experts [rank x E/ep, (rank+1) x E/ep);
    tokens travel to their experts' ranks and back by two all-to-alls (autograd-aware, so the
    gradients travel back the same way), after one all-to-all of the per-expert counts.
    """

    def __init__(self, dim: int, hidden: int, experts: int, top_k: int) -> None:
        super().__init__()
        self.n_experts, self.top_k = experts, top_k
        self.router = nn.Linear(dim, experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(dim, hidden) for _ in range(experts))
        self.ep_group: object | None = None
        self.ep_size = 1

    def shard_experts(self, group: object, rank: int, size: int) -> None:
        """Keep this rank's share of the experts (expert parallel over `group`)."""
        per = self.n_experts // size
        self.experts = nn.ModuleList(list(self.experts)[rank * per : (rank + 1) * per])
        self.ep_group, self.ep_size = group, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        flat = x.reshape(-1, d)
        scores = F.softmax(self.router(flat).float(), dim=-1)
        weights, ids = scores.topk(self.top_k, dim=-1)
        weights = (weights / weights.sum(-1, keepdim=True)).type_as(flat)
        order = torch.argsort(ids.reshape(-1), stable=True)
        tokens = flat.repeat_interleave(self.top_k, dim=0)[order]
        counts = torch.bincount(ids.reshape(-1), minlength=self.n_experts)
        if self.ep_group is None:
            routed = self._experts(tokens, counts.tolist())
        else:
            routed = self._dispatch(tokens, counts)
        out = torch.zeros_like(routed).index_copy(0, order, routed)
        return (out.view(-1, self.top_k, d) * weights.unsqueeze(-1)).sum(1).view(b, t, d)

    def _experts(self, tokens: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Tokens sorted by (local) expert, `counts` per expert -> their outputs, same order."""
        chunks = tokens.split(counts)
        return torch.cat([expert(c) for expert, c in zip(self.experts, chunks, strict=True)])

    def _dispatch(self, tokens: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist
        from torch.distributed.nn.functional import all_to_all_single

        local = self.n_experts // self.ep_size
        send = counts.view(self.ep_size, local)  # row r: tokens for rank r's experts
        recv = torch.empty_like(send)
        dist.all_to_all_single(recv, send, group=self.ep_group)
        send_splits, recv_splits = send.sum(1).tolist(), recv.sum(1).tolist()
        got = all_to_all_single(
            tokens.new_empty(sum(recv_splits), tokens.shape[1]),
            tokens,
            recv_splits,
            send_splits,
            group=self.ep_group,
        )
        # got is ordered by source rank, then local expert: regroup by expert for the experts
        pieces = got.split(recv.flatten().tolist())
        by_expert = [pieces[s * local + e] for e in range(local) for s in range(self.ep_size)]
        done = self._experts(torch.cat(by_expert), recv.sum(0).tolist())
        back = done.split([int(recv[s, e]) for e in range(local) for s in range(self.ep_size)])
        by_source = [back[e * self.ep_size + s] for s in range(self.ep_size) for e in range(local)]
        return all_to_all_single(
            tokens.new_empty(tokens.shape),
            torch.cat(by_source),
            send_splits,
            recv_splits,
            group=self.ep_group,
        )


class TransformerBlock(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.feed_forward: nn.Module = (
            MoE(cfg.dim, cfg.ffn_dim, cfg.moe_experts, cfg.moe_top_k)
            if cfg.moe_experts
            else FeedForward(cfg.dim, cfg.ffn_dim)
        )

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.feed_forward(self.ffn_norm(h))


class Llama(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg.dim // cfg.n_heads, cfg.seq_len, cfg.rope_theta)
        # Not parameters: FSDP and TP leave buffers whole on every rank.
        self.rope_cos: torch.Tensor
        self.rope_sin: torch.Tensor
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, cos, sin)
        return self.output(self.norm(h))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def build_llama(cfg: LlamaConfig, seed: int, device: torch.device) -> Workload:
    torch.manual_seed(seed)  # the same weights on every rank: layouts start from one model
    model = Llama(cfg).to(device)

    make_batch = token_batches(cfg.vocab_size, cfg.per_rank_batch, cfg.seq_len, seed, device)
    # The weights a token passes through: of an MoE layer's experts only its top k of them
    active = linear_weights(model)
    moes = [m for m in model.modules() if isinstance(m, MoE)]
    for moe in moes:
        expert_weights = linear_weights(moe.experts)
        active -= expert_weights - expert_weights * moe.top_k // moe.n_experts
    per_sample, how = flops.decoder_flops_per_sample(active, cfg.n_layers, cfg.dim, cfg.seq_len)
    if moes:
        how += "; of each MoE layer's expert weights top_k/experts count (the active ones)"
    return Workload(
        name="llama",
        model=model,
        make_batch=make_batch,
        loss_fn=lm_loss,
        samples_per_rank=cfg.per_rank_batch,
        tokens_per_rank=cfg.per_rank_batch * cfg.seq_len,
        seq_len=cfg.seq_len,
        flops_per_sample=per_sample,
        flops_method=how,
    )
