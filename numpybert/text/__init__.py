"""Text in: the tokenizer and the checks on model inputs."""
