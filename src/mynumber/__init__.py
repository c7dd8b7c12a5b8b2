"""mynumber: Japan's My Number system, open source."""

__version__ = "0.1.0"
