"""SpineViewer gui package."""
