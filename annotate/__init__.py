"""annotate: labelling-side tools built on top of the ``vtondata`` manifests.

``annotate.landmarks`` holds the SAL-HG garment/person landmark schema (32 semantically associated
points), readers for the formats landmark annotations come in, checks, exporters (COCO keypoints,
CVAT, Label Studio, FiftyOne), rendering helpers (heatmaps, SAL-VTON hard masks) and metrics.
This package reads data only through ``vtondata``'s public API and never the reverse.
"""
