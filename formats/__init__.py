"""Message formats: one module per format behind `formats.base.Encoder`, chosen by its task-file name."""

from obsync.formats.registry import encoder_for

__all__ = ["encoder_for"]
