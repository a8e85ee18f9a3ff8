"""cdl-tui's front ends: the command line, the plain-text mode and the Textual app.

Only the full-screen app imports textual, and only when it runs.
"""
