"""A small vision transformer (Dosovitskiy et al.), pretrained in the pipeline, for images and spectrograms.

The same model reads 28x28 digits as 7x7 patches and log-mel spectrograms as patches of a few frames
(the Audio Spectrogram Transformer's recipe): pre-LN blocks with separate q/k/v/o projections (so
LoRA and the NTK features address W_q and W_v by name), a CLS token, learned positions, and a linear
head on the final CLS state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from lorarepro.io import atomic_path


@dataclass(frozen=True)
class ViTConfig:
    image_size: tuple[int, int]  # (height, width) of the input; spectrograms: (mel bins, frames)
    patch_size: tuple[int, int]
    dim: int
    depth: int
    heads: int
    mlp_dim: int
    classes: int

    @property
    def patches(self) -> int:
        return (self.image_size[0] // self.patch_size[0]) * (self.image_size[1] // self.patch_size[1])


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape

        def split(y: Tensor) -> Tensor:
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        out = nn.functional.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)),
                                                         split(self.v_proj(x)))
        return self.o_proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        ph, pw = config.patch_size
        self.patch = nn.Linear(ph * pw, config.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, config.patches + 1, config.dim))
        self.blocks = nn.ModuleList(Block(config.dim, config.heads, config.mlp_dim) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.classes)

    def embed(self, images: Tensor) -> Tensor:
        """[B, H, W] -> tokens [B, 1 + patches, dim] (CLS first)."""
        (ph, pw), b = self.config.patch_size, images.shape[0]
        patches = images.unfold(1, ph, ph).unfold(2, pw, pw).reshape(b, -1, ph * pw)
        tokens = torch.cat([self.cls.expand(b, -1, -1), self.patch(patches)], dim=1)
        return tokens + self.pos

    def forward(self, images: Tensor) -> Tensor:
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))

    def new_head(self, classes: int, generator: torch.Generator) -> None:
        """A fresh classifier for a new label set, initialised like Hugging Face's ViT (N(0, 0.02²), zero bias)."""
        self.config = replace(self.config, classes=classes)
        self.head = nn.Linear(self.config.dim, classes)
        with torch.no_grad():
            self.head.weight.copy_(0.02 * torch.randn(self.head.weight.shape, generator=generator))
            self.head.bias.zero_()

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            torch.save({"config": asdict(self.config), "state": self.state_dict()}, tmp)

    @classmethod
    def load(cls, path) -> "ViT":
        saved = torch.load(path, weights_only=True)
        config = ViTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})
        model = cls(config)
        model.load_state_dict(saved["state"])
        return model.eval()


class ViTReadout(nn.Module):
    """The last block of a ViT, its final norm and head, read at the CLS token: the trained block of
    last-layer fine-tuning (its input is the frozen blocks' output, computed once)."""

    targets = ("block.attn.q_proj", "block.attn.v_proj")

    def __init__(self, model: ViT):
        super().__init__()
        self.block, self.norm, self.head = model.blocks[-1], model.norm, model.head

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.norm(self.block(tokens)[:, 0]))


@torch.no_grad()
def vit_block_inputs(model: ViT, images: Tensor, batch_size: int = 256) -> Tensor:
    """The input of the last block for every image (the frozen embedding and blocks run once)."""
    chunks = []
    for start in range(0, len(images), batch_size):
        x = model.embed(images[start:start + batch_size])
        for block in model.blocks[:-1]:
            x = block(x)
        chunks.append(x)
    return torch.cat(chunks)
