"""User-caused errors: each message is one line a radiologist understands."""


class SpineViewerError(Exception):
    """Base for errors the user can cause (bad input); shown as one line, never a traceback."""


class NoDicomFound(SpineViewerError):
    """The path holds no readable DICOM image."""


class NoSagittalT2Series(SpineViewerError):
    """No series qualifies as sagittal T2."""


class UnreadableSeries(SpineViewerError):
    """The chosen series cannot be loaded."""


class ModelError(SpineViewerError):
    """The segmentation model is missing or does not match its card."""


class Cancelled(SpineViewerError):
    """The user cancelled a running analysis."""


class SeriesNotFound(SpineViewerError):
    """The series the user asked for is not in the study."""


class UnsuitableSeries(SpineViewerError):
    """The series asked for is not a sagittal T2 (analysable only when forced)."""


class NoPixelSpacing(SpineViewerError):
    """The analysed slice has no usable PixelSpacing: no millimetre can be measured."""
