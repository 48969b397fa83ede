"""edgekit: on-device models, media I/O and a hardware bridge for smart terminals."""

__version__ = "0.1.0"
