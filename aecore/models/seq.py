"""LSTM sequence-to-sequence autoencoder (seed 000's `seq2seq-lstm`).

The encoder's final (h, c) initialise the decoder. Training uses teacher
forcing (the decoder reads the true previous token); inference decodes
greedily, feeding back its own argmax. Token 0 is the start token, which the
data never uses (its values are 1..vocab-1).

Two deliberate differences from the seed's Keras code, both bugs there: the
seed starts inference from an all-zero vector although training started from
the one-hot of 0, and it feeds back the softmax vector instead of the chosen
token. Here inference starts and continues exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecore.errors import ConfigError
from aecore.models.base import AEOutput, Autoencoder, ModelConfig, check_choice, check_positive_int


@dataclass
class Seq2SeqConfig(ModelConfig):
    kind: ClassVar[str] = "seq2seq"
    input_shape: tuple[int, ...] = (6,)
    vocab: int = 51
    hidden: int = 128
    output_len: int = 3
    init: Literal["default", "keras"] = "keras"

    def __post_init__(self):
        super().__post_init__()
        if len(self.input_shape) != 1:
            raise ConfigError("a sequence model needs input_shape (length,).")
        check_positive_int("vocab", self.vocab, lo=2, hi=100_000)
        check_positive_int("hidden", self.hidden, hi=8192)
        check_positive_int("output_len", self.output_len, hi=1000)
        check_choice("init", self.init, ("default", "keras"))
        if self.corruption.active or self.sparsity.l1 or self.sparsity.kl:
            raise ConfigError("corruption and sparsity do not apply to the sequence model.")


class Seq2SeqLSTM(Autoencoder):
    config_class = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig):
        super().__init__(config)
        V, H = config.vocab, config.hidden
        self.encoder = nn.LSTM(V, H, batch_first=True)
        self.decoder = nn.LSTM(V, H, batch_first=True)
        self.head = nn.Linear(H, V)
        if config.init == "keras":
            self._keras_init()

    def _keras_init(self) -> None:
        # Keras LSTM defaults: Glorot-uniform input kernel, orthogonal recurrent
        # kernel, zero bias with the forget gate's set to 1 (PyTorch order i, f, g, o).
        H = self.config.hidden
        for lstm in (self.encoder, self.decoder):
            nn.init.xavier_uniform_(lstm.weight_ih_l0)
            for g in range(4):
                nn.init.orthogonal_(lstm.weight_hh_l0.data[g * H : (g + 1) * H])
            nn.init.zeros_(lstm.bias_ih_l0)
            nn.init.zeros_(lstm.bias_hh_l0)
            lstm.bias_ih_l0.data[H : 2 * H] = 1.0
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def latent_dim(self) -> int:
        return 2 * self.config.hidden

    def _one_hot(self, ids: Tensor) -> Tensor:
        return F.one_hot(ids.long(), self.config.vocab).to(self.head.weight.dtype)

    def encode(self, x: Tensor) -> Tensor:
        _, (h, c) = self.encoder(self._one_hot(x))  # (B, T) -> h, c: (1, B, H)
        return torch.cat([h[0], c[0]], dim=1)  # (B, 2H): the state the decoder starts from

    def _state(self, z: Tensor) -> tuple[Tensor, Tensor]:
        H = self.config.hidden
        return z[:, :H].unsqueeze(0).contiguous(), z[:, H:].unsqueeze(0).contiguous()

    def decode(self, z: Tensor) -> Tensor:
        """Greedy decoding: (B, 2H) -> logits (B, output_len, vocab)."""
        state = self._state(z)
        token = torch.zeros(z.shape[0], 1, dtype=torch.long, device=z.device)
        logits = []
        for _ in range(self.config.output_len):
            out, state = self.decoder(self._one_hot(token), state)
            step = self.head(out)  # (B, 1, V)
            logits.append(step)
            token = step.argmax(-1)
        return torch.cat(logits, dim=1)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Predicted token ids (B, output_len)."""
        return self.decode(self.encode(x)).argmax(-1)

    def forward(self, x: Tensor, target: Tensor | None = None) -> AEOutput:
        if target is None:
            raise ConfigError("the sequence model needs target sequences.")
        z = self.encode(x)
        # Teacher forcing: the decoder reads [0] + target[:-1]  (B, T_out)
        dec_in = torch.cat([torch.zeros_like(target[:, :1]), target[:, :-1]], dim=1)
        out, _ = self.decoder(self._one_hot(dec_in), self._state(z))
        logits = self.head(out)  # (B, T_out, V)
        ce = F.cross_entropy(logits.reshape(-1, self.config.vocab), target.reshape(-1).long())
        return AEOutput(loss=ce, recon=logits, z=z, terms={"ce": ce})
