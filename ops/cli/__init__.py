"""The `vidsearch` command line."""
