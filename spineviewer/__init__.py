"""SpineViewer: research software for MRI lumbar vertebral morphometry and fracture detection.

Not a certified medical device; not for diagnostic use without review by a qualified reader.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "Research software, not a certified medical device. Results must be reviewed by a "
    "qualified reader before any clinical use."
)
