"""Coverage-guided fuzzing with atheris: the runner, the targets and their seed corpora (README.md)."""
