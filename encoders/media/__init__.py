"""Media decoding: probing, keyframes, audio."""
