"""The customer-base model (ml.clv) as an MLflow pyfunc, so a BG/NBD champion is
registered, loaded and served like the scikit-learn ones (ml.registry unwraps it)."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd


class CustomerBasePyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc.predict: the churn probability (CustomerBaseChurn) or the expected revenue
    (CustomerBaseValue); `estimator` keeps the scikit-learn-style object for scoring."""

    def __init__(self, estimator):
        self.estimator = estimator

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        if hasattr(self.estimator, "predict_proba"):
            return self.estimator.predict_proba(model_input)[:, 1]
        return self.estimator.predict(model_input)
