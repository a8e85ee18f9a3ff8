"""The cdl-tui engine: farm API client, downloader and their settings.

Nothing in this package imports textual; a test enforces it, so the engine stays usable
from scripts, the headless mode and any other front end.
"""
