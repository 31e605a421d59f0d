"""Tests of spineviewer.synth."""
