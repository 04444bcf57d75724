"""The hybrid retriever (DESIGN.md section 6): routes (BM25, k-NN per store), fusion, NCL, moments."""
