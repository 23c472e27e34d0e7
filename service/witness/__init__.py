"""Interconnection: C2SP signed-note checkpoints, witness cosignatures, split-view evidence.

:mod:`service.witness.note` is the pure note library (signed notes, tlog-checkpoint,
tlog-cosignature/v1); the witness process and the space's cosignature store build on it.
"""
