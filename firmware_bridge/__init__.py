"""firmware_bridge: host side of the edgekit framed serial/USB protocol."""

__version__ = "0.1.0"
