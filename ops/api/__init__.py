"""The HTTP API and results page (FastAPI), served by `vidsearch serve`."""
