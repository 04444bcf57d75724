"""Re-embedding after retraining: chunks, catch-up, validation gate, blue/green alias swap."""
