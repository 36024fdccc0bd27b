"""LinearIntentEnsemble: a second opinion on DIET's intent (loaded by nlu/config.yml).

Runs after DIETClassifier and before FallbackClassifier.  It trains a
multinomial logistic regression on the same sparse sentence features DIET sees
(word and character n-grams, regex and lookup hits; binarized) and replaces
DIET's intent ranking by the product of the two models' distributions,
renormalized:

    p(intent) ~ p_diet(intent) * p_linear(intent)

When both models back the same intent the product is surer than either; when
they disagree it is less sure, so the text falls under the routing threshold
and goes to the LLM.  On our data DIET alone is over-confident on short texts
that it has not seen, and the linear model alone ranks about as well but is
rarely sure; the product routed more held-out texts right than either, at no
cost in out-of-scope false accepts (nlu/README.md has the figures, chosen on a
dev split of the training data, not the test split).

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
# Intents DIET left out of its ranking get this probability, not zero, so
# that one model alone cannot veto an intent.
_FLOOR = 1e-4


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class LinearIntentEnsemble(GraphComponent):
    """DIET's intent distribution times a logistic regression's (module doc)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # inverse L2 strength of the logistic regression (chosen on a dev split)
            "C": 10.0,
            # intents reported in intent_ranking after combining
            "ranking_length": 10,
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
            logger.warning("LinearIntentEnsemble: no trained weights, DIET's ranking is kept as is")
            return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.linear_model import LogisticRegression

        featurized = [(m, _active_features(m)) for m in training_data.intent_examples]
        examples = [(m, active) for m, active in featurized if active is not None]
        intents = sorted({m.get(INTENT) for m, _ in examples})
        if len(intents) < 2:
            logger.warning("LinearIntentEnsemble: fewer than two intents, nothing to train")
            return self._resource
        rows = [active for _, active in examples]
        width = _feature_width(examples[0][0])
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
            active = _active_features(message)
            ranking = message.get(INTENT_RANKING)
            if active is None or not ranking:
                continue
            linear = _softmax(self._weights[active].sum(axis=0) + self._bias)
            diet = {r[INTENT_NAME_KEY]: r[PREDICTED_CONFIDENCE_KEY] for r in ranking}
            joint = linear * np.array([max(diet.get(i, 0.0), _FLOOR) for i in self._intents])
            joint /= joint.sum()
            order = np.argsort(-joint)[: self._config["ranking_length"]]
            combined = [
                {INTENT_NAME_KEY: self._intents[i], PREDICTED_CONFIDENCE_KEY: float(joint[i])}
                for i in order
            ]
            message.set(INTENT, dict(combined[0]), add_to_output=True)
            message.set(INTENT_RANKING, combined, add_to_output=True)
        return messages


def _sentence_blocks(message: Message) -> List[scipy.sparse.spmatrix]:
    """The sparse sentence features of the text, one block per featurizer, in
    pipeline order (the same at training and at prediction)."""
    return [
        f.features
        for f in message.features
        if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE and f.is_sparse()
    ]


def _active_features(message: Message) -> Optional[np.ndarray]:
    """Column numbers of the features present in the text (binarized bag).

    Gathering rows of the weight matrix by these is several times cheaper than
    Message.get_sparse_features, which also stacks the sequence features."""
    blocks = _sentence_blocks(message)
    if not blocks:
        return None
    active, offset = [], 0
    for block in blocks:
        coo = block.tocoo()
        active.append(coo.col[coo.data != 0] + offset)
        offset += block.shape[1]
    return np.unique(np.concatenate(active)).astype(np.int64)


def _feature_width(message: Message) -> int:
    return sum(block.shape[1] for block in _sentence_blocks(message))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()
