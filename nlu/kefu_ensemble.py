"""LinearIntentEnsemble: a second opinion on DIET's intent (loaded by nlu/config.yml).

Runs after DIETClassifier and before FallbackClassifier.  It trains a
multinomial logistic regression on the sparse sentence features DIET reads
(binarized) and replaces the intent ranking it finds by the product of the two
distributions, renormalized:

    p(intent) ~ p_ranking(intent) * p_linear(intent)

The ranking it finds is DIET's, or that of an ensemble before it: config.yml
puts TextCharsIntentEnsemble, the same on character n-grams of the whole text,
second, so that DIET's distribution is multiplied by two linear models'.
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
from rasa.nlu.constants import TOKENS_NAMES
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
            # newton-cg: on these wide, sparse, binary features it converges in a few dozen steps where
            # sklearn's default lbfgs takes hundreds (nlu/README.md has the times)
            "solver": "newton-cg",
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
                loaded = cls(
                    config,
                    model_storage,
                    resource,
                    weights=saved["weights"],
                    bias=saved["bias"],
                    intents=[str(x) for x in saved["intents"]],
                )
                loaded._restore(saved)
                return loaded
        except (ValueError, FileNotFoundError):
            logger.warning("LinearIntentEnsemble: no trained weights, the intent ranking is kept as is")
            return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.linear_model import LogisticRegression

        self._fit_vocabulary(training_data.intent_examples)
        featurized = [(m, self._active(m)) for m in training_data.intent_examples]
        examples = [(m, active) for m, active in featurized if active is not None]
        intents = sorted({m.get(INTENT) for m, _ in examples})
        if len(intents) < 2:
            logger.warning("LinearIntentEnsemble: fewer than two intents, nothing to train")
            return self._resource
        rows = [active for _, active in examples]
        width = self._width(examples[0][0])
        x = scipy.sparse.csr_matrix(
            (
                np.ones(sum(len(r) for r in rows), dtype=np.float32),
                np.concatenate(rows),
                np.cumsum([0] + [len(r) for r in rows]),
            ),
            shape=(len(rows), width),
        )
        y = [m.get(INTENT) for m, _ in examples]
        model = LogisticRegression(C=self._config["C"], solver=self._config["solver"], max_iter=3000)
        model.fit(x, y)
        assert list(model.classes_) == intents
        with self._storage.write_to(self._resource) as folder:
            np.savez(
                folder / _FILE,
                weights=np.ascontiguousarray(model.coef_.T, dtype=np.float32),
                bias=model.intercept_.astype(np.float32),
                intents=np.array(intents),
                **self._arrays_to_save(),
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

    # --- features: the sparse sentence features of the featurizers before it ---

    def _fit_vocabulary(self, examples: List[Message]) -> None:
        """Nothing to learn: the featurizers have their own vocabularies."""

    def _arrays_to_save(self) -> Dict[Text, np.ndarray]:
        return {}

    def _restore(self, saved: Any) -> None:
        """Read back what _arrays_to_save wrote."""

    def _width(self, message: Message) -> int:
        return sum(block.shape[1] for block in self._blocks(message))

    def _blocks(self, message: Message) -> List[scipy.sparse.spmatrix]:
        """The sparse sentence features of the text, one block per featurizer, in
        pipeline order (the same at training and at prediction)."""
        return [
            f.features
            for f in message.features
            if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE and f.is_sparse()
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


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class TextCharsIntentEnsemble(LinearIntentEnsemble):
    """LinearIntentEnsemble on character n-grams of the whole text.

    The text is the tokens' lemmas joined by spaces, so n-grams run across word
    boundaries and do not depend on where jieba cut.  It counts them itself
    rather than through a CountVectorsFeaturizer: that featurizer also builds
    per-token sequence features, which nothing here reads, and cost about a
    millisecond per parse.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**LinearIntentEnsemble.get_default_config(), "min_ngram": 1, "max_ngram": 3}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._vocabulary: Dict[Text, int] = {}

    def _ngrams(self, message: Message) -> List[Text]:
        tokens = message.get(TOKENS_NAMES[TEXT]) or []
        text = " ".join(t.lemma for t in tokens)
        low, high = self._config["min_ngram"], self._config["max_ngram"]
        return [text[i : i + n] for n in range(low, high + 1) for i in range(len(text) - n + 1)]

    def _fit_vocabulary(self, examples: List[Message]) -> None:
        seen = sorted({g for m in examples for g in self._ngrams(m)})
        self._vocabulary = {g: i for i, g in enumerate(seen)}

    def _arrays_to_save(self) -> Dict[Text, np.ndarray]:
        return {"vocabulary": np.array(list(self._vocabulary))}

    def _restore(self, saved: Any) -> None:
        self._vocabulary = {str(g): i for i, g in enumerate(saved["vocabulary"])}

    def _width(self, message: Message) -> int:
        return len(self._vocabulary)

    def _active(self, message: Message) -> Optional[np.ndarray]:
        columns = {self._vocabulary.get(g, -1) for g in self._ngrams(message)}
        columns.discard(-1)
        return np.array(sorted(columns), dtype=np.int64) if columns else None


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()
