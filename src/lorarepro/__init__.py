"""lorarepro: reproduce five LoRA papers end to end and check every number against the paper's."""

__version__ = "0.1.0"
