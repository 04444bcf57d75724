"""The hybrid retriever (docs/architecture.md, "Algorithms"): routes (BM25, k-NN per store), fusion, NCL, moments."""
