"""The local stack: Kafka (KRaft), OpenSearch with k-NN, Redis and milvus-lite on 127.0.0.1.

Everything is installed from the registries (Maven Central, Debian, PyPI), cached outside the
repository, and started as plain child processes tracked by pid files, so `vidsearch stack up`
works the same on a laptop and in CI with no container engine.
"""
