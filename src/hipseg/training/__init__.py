"""Training stage. Takes cases (image + label map files) and a config; gives a model folder.

Scans in memory and random training planes (``data``) or patches (``patches``), cached
distance weight maps (``weightmaps``), the loop with validation, checkpoints and ``--resume``
(``train``), fine-tuning and the interactive round (``finetune``), DDP under ``torchrun``
(``distributed``).
"""
