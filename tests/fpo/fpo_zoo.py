"""Reference models from plain torch.nn for the FPO tests and benchmarks (no torchvision).

ResNet (bottleneck, as ResNet-50), ViT, GPT/LLaMA-style decoder (RMSNorm, SwiGLU, RoPE, SDPA),
UNet-style (GroupNorm, SiLU, transposed convs, bilinear interpolation, skip concat), LSTM
language model, message-passing graph network, and the small models the FlopCounterMode
comparisons use (MLP, CNN with grouped and dilated convs, transformer block, a custom
autograd.Function). Each has a ``tiny`` configuration for fast tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# -- ResNet ----------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet-50 layout (v1.5: stride in the 3x3 conv)."""

    def __init__(
        self, layers: tuple[int, ...] = (3, 4, 6, 3), width: int = 64, num_classes: int = 1000
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = width
        stages = []
        for i, blocks in enumerate(layers):
            w = width * 2**i
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(in_ch, w, stride=2 if (b == 0 and i > 0) else 1))
                in_ch = w * Bottleneck.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50() -> ResNet:
    return ResNet()


def resnet_tiny() -> ResNet:
    return ResNet(layers=(1, 1, 1, 1), width=4, num_classes=10)


# -- ViT -------------------------------------------------------------------------------------


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(
        self,
        image: int = 224,
        patch: int = 16,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        n = (image // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.dropout = nn.Dropout(0.1)
        self.blocks = nn.ModuleList(ViTBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.dropout(x + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def vit_tiny() -> ViT:
    return ViT(image=16, patch=4, dim=16, depth=2, heads=2, num_classes=5)


# -- GPT / LLaMA-style decoder ----------------------------------------------------------------


@dataclass(frozen=True)
class DecoderConfig:
    vocab: int = 32000
    dim: int = 4096
    layers: int = 32
    heads: int = 32
    hidden: int = 11008
    max_seq: int = 2048


LLAMA_7B = DecoderConfig()
DECODER_TINY = DecoderConfig(vocab=50, dim=16, layers=2, heads=2, hidden=40, max_seq=16)


def rope_tables(seq: int, head_dim: int, device: torch.device | str) -> tuple[torch.Tensor, ...]:
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.outer(torch.arange(seq, device=device).float(), inv)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class DecoderBlock(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.attn_norm = nn.RMSNorm(cfg.dim, eps=1e-5)
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.mlp_norm = nn.RMSNorm(cfg.dim, eps=1e-5)
        self.w1 = nn.Linear(cfg.dim, cfg.hidden, bias=False)  # gate
        self.w3 = nn.Linear(cfg.dim, cfg.hidden, bias=False)  # up
        self.w2 = nn.Linear(cfg.hidden, cfg.dim, bias=False)  # down

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        h = self.attn_norm(x)
        q, k, v = (
            w(h).view(b, s, self.heads, d // self.heads).transpose(1, 2)
            for w in (self.wq, self.wk, self.wv)
        )
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.wo(a.transpose(1, 2).reshape(b, s, d))
        h = self.mlp_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Decoder(nn.Module):
    """A LLaMA-style decoder: RMSNorm, rotary embeddings, causal SDPA, SwiGLU."""

    def __init__(self, cfg: DecoderConfig = DECODER_TINY) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.layers = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.RMSNorm(cfg.dim, eps=1e-5)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        cos, sin = rope_tables(ids.shape[1], self.cfg.dim // self.cfg.heads, ids.device)
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x))


def gpt_tiny() -> Decoder:
    return Decoder(DECODER_TINY)


# -- UNet-style --------------------------------------------------------------------------------


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(2, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(2, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(x)))


class UNet(nn.Module):
    def __init__(self, c: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.enc1 = ConvBlock(3, c)
        self.enc2 = ConvBlock(c, 2 * c)
        self.mid = ConvBlock(2 * c, 4 * c)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = ConvBlock(4 * c, 2 * c)
        self.dec1 = ConvBlock(3 * c, c)
        self.out = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        up = F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([up, e1], dim=1))
        return torch.sigmoid(self.out(d1))


def unet_tiny() -> UNet:
    return UNet(c=4)


# -- LSTM language model -----------------------------------------------------------------------


class LSTMLanguageModel(nn.Module):
    def __init__(self, vocab: int = 50, dim: int = 16, hidden: int = 24, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, num_layers=layers, batch_first=True, dropout=0.1)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(ids))
        return self.head(out)


def lstm_tiny() -> LSTMLanguageModel:
    return LSTMLanguageModel()


# -- message passing (graph network) -----------------------------------------------------------


class MessagePassing(nn.Module):
    """Sum-aggregated messages, a GRU-free update MLP, a LayerNorm, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.message = nn.Linear(2 * dim, dim)
        self.update = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        src, dst = edges[0], edges[1]
        msg = F.relu(self.message(torch.cat([x[src], x[dst]], dim=-1)))
        agg = torch.zeros_like(x).index_add_(0, dst, msg)
        deg = torch.zeros(x.shape[0], 1, device=x.device).index_add_(
            0, dst, torch.ones(dst.shape[0], 1, device=x.device)
        )
        agg = agg / deg.clamp_min(1.0)
        return self.norm(x + self.update(torch.cat([x, agg], dim=-1)))


class GraphNet(nn.Module):
    def __init__(self, in_dim: int = 6, dim: int = 16, layers: int = 2, classes: int = 3) -> None:
        super().__init__()
        self.encode = nn.Linear(in_dim, dim)
        self.layers = nn.ModuleList(MessagePassing(dim) for _ in range(layers))
        self.readout = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        h = self.encode(x)
        for layer in self.layers:
            h = layer(h, edges)
        return F.log_softmax(self.readout(h.mean(dim=0, keepdim=True)), dim=-1)


def graph_tiny() -> GraphNet:
    return GraphNet()


def graph_inputs(nodes: int = 7, edges: int = 12, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    x = torch.randn(nodes, 6, device=device)
    if device == "meta":
        return x, torch.zeros(2, edges, dtype=torch.long, device=device)
    return x, torch.randint(0, nodes, (2, edges), device=device)


# -- small models for the FlopCounterMode comparisons -----------------------------------------


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 5)
    )


class CNN(nn.Module):
    """Grouped, dilated, strided and depthwise convs, with and without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, bias=False)
        self.strided = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 5, padding=4, dilation=2, groups=16)
        self.bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.grouped(x))
        x = F.relu(self.bn(self.depthwise(self.strided(x))))
        return self.fc(x.mean(dim=(2, 3)))


class TransformerBlock(nn.Module):
    """Pre-norm block with SDPA (causal) and a GELU MLP."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class _LinearFn(torch.autograd.Function):
    """A matmul with a hand-written backward."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, w: torch.Tensor):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        return x @ w.t()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad @ w, grad.t() @ x


class CustomFunctionModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 10) / math.sqrt(10))
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(_LinearFn.apply(x, self.w)))


# -- MobileNet-style (depthwise-separable, grouped convolutions) --------------------------------


class DepthwiseSeparable(nn.Module):
    """MobileNet's block: a depthwise 3x3 conv (groups = channels), then a pointwise 1x1 conv."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.pw = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.dw(x)))
        return F.relu(self.bn2(self.pw(x)))


class MobileNet(nn.Module):
    """MobileNet v1 layout: a strided 3x3 stem, depthwise-separable blocks, pool, classifier."""

    def __init__(
        self,
        blocks: tuple[tuple[int, int], ...] = ((16, 1), (32, 2)),
        stem: int = 8,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(stem)
        layers, in_ch = [], stem
        for out_ch, stride in blocks:
            layers.append(DepthwiseSeparable(in_ch, out_ch, stride))
            in_ch = out_ch
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def mobilenet_tiny() -> MobileNet:
    return MobileNet()


# -- activation checkpointing -----------------------------------------------------------------


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.a = nn.Linear(dim, hidden)
        self.b = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x)))


class CheckpointedMLP(nn.Module):
    """A stem, MLP blocks each run under ``torch.utils.checkpoint``, a head."""

    def __init__(
        self,
        dim: int = 8,
        hidden: int = 16,
        blocks: int = 2,
        use_reentrant: bool = False,
        d_in: int = 4,
        d_out: int = 2,
    ) -> None:
        super().__init__()
        self.stem = nn.Linear(d_in, dim)
        self.blocks = nn.ModuleList(MLPBlock(dim, hidden) for _ in range(blocks))
        self.head = nn.Linear(dim, d_out)
        self.use_reentrant = use_reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        x = self.stem(x)
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=self.use_reentrant)
        return self.head(x)


def checkpointed_tiny() -> CheckpointedMLP:
    return CheckpointedMLP()


# -- mixture of experts (torch._grouped_mm) ----------------------------------------------------


class MixtureOfExperts(nn.Module):
    """A top-k mixture of SwiGLU experts, as transformers' ``grouped_mm`` experts run it.

    Route each token to its top-k experts, sort the (token, expert) pairs by expert, run every
    expert's rows with one ``torch._grouped_mm`` per projection (offsets from ``histc``, as
    transformers computes them), weight the outputs and add them back per token. The grouped
    product needs bfloat16 on the meta device, so the block is built in bfloat16.
    """

    def __init__(self, dim: int = 16, hidden: int = 32, experts: int = 4, top_k: int = 2) -> None:
        super().__init__()
        self.experts, self.top_k = experts, top_k
        self.router = nn.Linear(dim, experts, bias=False)
        self.gate_up = nn.Parameter(torch.randn(experts, dim, 2 * hidden) / math.sqrt(dim))
        self.down = nn.Parameter(torch.randn(experts, hidden, dim) / math.sqrt(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        h = x.reshape(-1, d)
        weights, chosen = F.softmax(self.router(h), dim=-1).topk(self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        flat = chosen.reshape(-1)
        order = flat.argsort()
        token = order // self.top_k
        counts = torch.histc(flat.float(), bins=self.experts, min=0, max=self.experts - 1)
        offs = counts.cumsum(0).to(torch.int32)
        gate, up = torch._grouped_mm(h[token], self.gate_up, offs=offs).chunk(2, dim=-1)
        y = torch._grouped_mm(F.silu(gate) * up, self.down, offs=offs)
        y = y * weights.reshape(-1)[order].unsqueeze(-1)
        return torch.zeros_like(h).index_add(0, token, y).view(b, s, d)


def moe_tiny() -> MixtureOfExperts:
    return MixtureOfExperts().to(torch.bfloat16)


# -- nn.TransformerEncoder (the fused fast path in eval under no_grad) --------------------------


def transformer_encoder_tiny() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
