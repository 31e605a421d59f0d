"""SpineViewer io package."""
