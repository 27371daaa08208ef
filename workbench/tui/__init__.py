"""The terminal UI."""

import os

# Textual repaints at most TEXTUAL_FPS times a second, and a key shows at the next repaint:
# at its default of 60, a key waited up to 17 ms of its 50 ms (bench/tui_stream.py). Read
# once, when Textual is first imported, so it is set here, before the app imports any of it.
os.environ.setdefault("TEXTUAL_FPS", "240")
