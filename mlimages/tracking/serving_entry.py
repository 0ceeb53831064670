"""The file MLflow runs to build a served model (models-from-code); logged with every serving version.

Never imported inside the project: it imports the copy of the serving code logged beside it
(``code/mlimages_serving``, which MLflow puts on the path before running this file), so a
deployment host needs the model and its requirements, not `mlimages`.
"""

import mlflow
from mlimages_serving.tracking.serving import ImageClassifier

mlflow.models.set_model(ImageClassifier())
