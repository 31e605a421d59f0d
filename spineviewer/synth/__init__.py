"""SpineViewer synth package."""
