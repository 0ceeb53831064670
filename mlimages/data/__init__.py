"""Input pipeline: pure image preprocessing (`preprocess`) and `tf.data` datasets of records (`pipeline`)."""
