"""The app's widgets. The lists paint with Textual's Line API: only the visible rows are
rendered, and a data update repaints only the rows whose text changed (on a render node
over SSH every byte to the terminal counts)."""
