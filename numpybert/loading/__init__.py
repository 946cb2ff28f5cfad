"""Files -> named arrays: safetensors reader, checkpoint names, config.json, fetching the default model."""
