"""The model path: tokenize, batch, run the model, turn scores into emotions. Knows no HTTP, cache or Ray."""
