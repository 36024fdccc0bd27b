"""LinearIntentEnsemble: a second opinion on DIET's intent (loaded by nlu/config.yml).

Runs after DIETClassifier and before FallbackClassifier.  It trains a
multinomial logistic regression on sparse sentence features (the featurizers
named in its `featurizers` option, binarized) and replaces the intent ranking
it finds by the product of the two distributions, renormalized:

    p(intent) ~ p_ranking(intent) * p_linear(intent)

The ranking it finds is DIET's, or that of an ensemble before it: two of them
in a row multiply DIET's distribution by two linear models' (config.yml uses
one on DIET's own features and one on the characters of the whole text).
Where the models back the same intent the product is surer than any of them;
where they disagree it is less sure, so the text falls under the routing
threshold and goes to the LLM.  On our data DIET alone is over-confident on
short texts it has not seen, and a linear model alone ranks about as well but
is rarely sure; the product routed more held-out texts right than DIET alone
(nlu/README.md has the figures, chosen on a dev split of the training data,
not on the test split).

The model is kept as plain arrays (coefficients, intercepts, intent names) in
an .npz file: loading it runs no pickled code.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    INTENT,
    INTENT_NAME_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

INTENT_RANKING = "intent_ranking"
_FILE = "linear_intents.npz"
# Intents left out of the ranking so far get this probability, not zero, so
# that one model alone cannot veto an intent.
_FLOOR = 1e-4


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class LinearIntentEnsemble(GraphComponent):
    """The intent ranking so far times a logistic regression's (module doc)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # inverse L2 strength of the logistic regression (chosen on a dev split)
            "C": 10.0,
            # intents reported in intent_ranking after combining
            "ranking_length": 10,
            # featurizer names (or aliases) whose features it reads; empty: all
            "featurizers": [],
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        weights: Optional[np.ndarray] = None,
        bias: Optional[np.ndarray] = None,
        intents: Optional[List[Text]] = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self._weights = weights  # (features, intents)
        self._bias = bias  # (intents,)
        self._intents = intents or []

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "LinearIntentEnsemble":
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "LinearIntentEnsemble":
        try:
            with model_storage.read_from(resource) as folder, np.load(folder / _FILE, allow_pickle=False) as saved:
                return cls(
                    config,
                    model_storage,
                    resource,
                    weights=saved["weights"],
                    bias=saved["bias"],
                    intents=[str(x) for x in saved["intents"]],
                )
        except (ValueError, FileNotFoundError):
            logger.warning("LinearIntentEnsemble: no trained weights, the intent ranking is kept as is")
            return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.linear_model import LogisticRegression

        featurized = [(m, self._active(m)) for m in training_data.intent_examples]
        examples = [(m, active) for m, active in featurized if active is not None]
        intents = sorted({m.get(INTENT) for m, _ in examples})
        if len(intents) < 2:
            logger.warning("LinearIntentEnsemble: fewer than two intents, nothing to train")
            return self._resource
        rows = [active for _, active in examples]
        width = sum(b.shape[1] for b in self._blocks(examples[0][0]))
        x = scipy.sparse.csr_matrix(
            (
                np.ones(sum(len(r) for r in rows), dtype=np.float32),
                np.concatenate(rows),
                np.cumsum([0] + [len(r) for r in rows]),
            ),
            shape=(len(rows), width),
        )
        y = [m.get(INTENT) for m, _ in examples]
        model = LogisticRegression(C=self._config["C"], max_iter=3000)
        model.fit(x, y)
        assert list(model.classes_) == intents
        with self._storage.write_to(self._resource) as folder:
            np.savez(
                folder / _FILE,
                weights=np.ascontiguousarray(model.coef_.T, dtype=np.float32),
                bias=model.intercept_.astype(np.float32),
                intents=np.array(intents),
            )
        return self._resource

    def process(self, messages: List[Message]) -> List[Message]:
        if self._weights is None:
            return messages
        for message in messages:
            active = self._active(message)
            ranking = message.get(INTENT_RANKING)
            if active is None or not ranking:
                continue
            linear = _softmax(self._weights[active].sum(axis=0) + self._bias)
            so_far = {r[INTENT_NAME_KEY]: r[PREDICTED_CONFIDENCE_KEY] for r in ranking}
            joint = linear * np.array([max(so_far.get(i, 0.0), _FLOOR) for i in self._intents])
            joint /= joint.sum()
            order = np.argsort(-joint)[: self._config["ranking_length"]]
            combined = [
                {INTENT_NAME_KEY: self._intents[i], PREDICTED_CONFIDENCE_KEY: float(joint[i])}
                for i in order
            ]
            message.set(INTENT, dict(combined[0]), add_to_output=True)
            message.set(INTENT_RANKING, combined, add_to_output=True)
        return messages


    def _blocks(self, message: Message) -> List[scipy.sparse.spmatrix]:
        """The sparse sentence features of the text, one block per featurizer, in
        pipeline order (the same at training and at prediction)."""
        chosen = self._config["featurizers"]
        return [
            f.features
            for f in message.features
            if f.attribute == TEXT
            and f.type == FEATURE_TYPE_SENTENCE
            and f.is_sparse()
            and (not chosen or f.origin in chosen)
        ]

    def _active(self, message: Message) -> Optional[np.ndarray]:
        """Column numbers of the features present in the text (binarized bag).

        Gathering rows of the weight matrix by these is several times cheaper than
        Message.get_sparse_features, which also stacks the sequence features."""
        blocks = self._blocks(message)
        if not blocks:
            return None
        active, offset = [], 0
        for block in blocks:
            coo = block.tocoo()
            active.append(coo.col[coo.data != 0] + offset)
            offset += block.shape[1]
        return np.unique(np.concatenate(active)).astype(np.int64)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()
