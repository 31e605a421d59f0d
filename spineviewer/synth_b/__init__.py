"""Renderer B: an independent drawing of the phantom anatomy, for validation only.

Never used for training: an import-linter contract forbids ``spineviewer.train`` and
``spineviewer.synth.training`` from importing it.
"""

from spineviewer.synth_b.render import Look, draw_look, render_b

__all__ = ["Look", "draw_look", "render_b"]
