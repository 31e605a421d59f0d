"""Phantom generator: labelled sagittal lumbar MRI slices, DICOM studies and training samples."""

from spineviewer.synth.phantom import PhantomParams, PhantomSlice, make_slice, random_params
from spineviewer.synth.training import train_sample

__all__ = ["PhantomParams", "PhantomSlice", "make_slice", "random_params", "train_sample"]
