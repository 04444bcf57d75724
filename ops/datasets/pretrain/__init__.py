"""`vidsearch dataset pretrain`: image-text pairs for the visual bridge head, only from packaged
sources (npm emoji sets, PyPI `emoji` names, the Tux Paint train split), rendered to look like
video frames. packages -> sources -> dedup -> render -> corpus."""
