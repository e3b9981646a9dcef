"""Evaluation stage. Takes reference and predicted label maps; gives metric tables (Dice,
GapDice, HD, HD95, ASSD per class) and dataset checks (``check``)."""
