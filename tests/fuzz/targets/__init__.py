"""One module per fuzz target; ``tests/fuzz/run.py`` describes the shape of a target."""
