"""The trained visual bridge: a small head from the frozen backbone's pooled features into the
text encoder's space, learned contrastively from the packaged image-text corpus. It replaces the
ImageNet label bridge when `encoders.bridge = "pretrained"`."""
