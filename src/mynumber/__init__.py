"""mynumber: Japan's My Number system, open source."""
