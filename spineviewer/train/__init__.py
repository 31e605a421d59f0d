"""SpineViewer train package."""
