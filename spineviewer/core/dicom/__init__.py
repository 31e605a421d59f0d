"""SpineViewer core/dicom package."""
