"""Batch analysis of whole archives: discover studies, analyse each once, resume, summarise.

``spineviewer batch ROOT --out DIR`` groups the DICOM files under ROOT by StudyInstanceUID
(`discover`), skips studies whose inputs, model and options are unchanged since a finished
run (`manifest`), analyses the rest through the same pipeline as ``analyze`` (`task`) in
local worker processes or on a Dask cluster (`executors`), and gathers one results.csv,
failures.csv and summary.json (`runner`). Never imports Qt.
"""
