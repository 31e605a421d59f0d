"""Headless core of SpineViewer: never imports Qt."""
