"""Dataset -> trained balanced model -> evaluation: the glue between ops.datasets and encoders.balanced."""
