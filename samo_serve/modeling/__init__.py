"""The model pipeline offline: GoEmotions data, training, export, evaluation, the model bench."""
