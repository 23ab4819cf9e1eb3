"""publisher: newsletters, alert emails, feeds and a web archive from Markdown."""

__version__ = "0.1.0"
