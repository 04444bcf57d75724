"""Same-source video search: keyframe fingerprints, temporal alignment of copies, and their metrics."""
