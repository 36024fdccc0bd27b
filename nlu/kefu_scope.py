"""OtherBusinessGate: a text that names another business is out of our scope.

"has my lazada package shipped yet", "肯德基疯狂星期四有啥优惠", "في كوبون خصم
أوبر؟" read, word for word, like our own order, promotion and delivery
questions.  A bag-of-n-grams model weighs the words it knows and ignores the
one it does not, so it routes them to our skills, sure of itself.  What tells
them apart is knowledge, not phrasing: the name of another shop, platform or
brand, or of a service the shop does not sell (air tickets, phone top-ups,
rent).  The `other_business` regex and lookup in data/entities.yml list them.

They work twice.  RegexFeaturizer turns them into a feature, "names another
business", that the models learn from our out-of-scope examples.  And this
component, placed before FallbackClassifier, puts out_of_scope first in the
intent ranking of any text that names one, so the hub hands it to the LLM
rather than a skill, whatever the models made of the rest.  It keeps its own
copy of the patterns: RegexEntityExtractor only extracts names that training
examples annotate, and these are no entity of ours.

Intents that ask for a person (human_agent, complaint) are left alone: "转人工，
你们比京东慢多了" still reaches a person.  A name followed by a payment word is a
way to pay us, not another business: "اس تي سي باي", "楽天ペイ", "ドコモ払い",
"فودافون كاش" are left to the models.  None of our in-scope training texts names
one of these businesses (tests/test_nlu_data.py checks that).
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Text

from kefu_business_names import names_another_business
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.utils.pattern_utils import extract_patterns
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

INTENT_RANKING = "intent_ranking"
_FILE = "other_business_patterns.json"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class OtherBusinessGate(GraphComponent):
    """Ranks out_of_scope first when the text names another business (module doc)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # the regex and lookup names in the training data
            "patterns": "other_business",
            "out_of_scope": "out_of_scope",
            # intents the gate never overrules
            "keep": ["human_agent", "complaint"],
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        patterns: Optional[List[Text]] = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self._patterns = patterns or []
        # case-insensitive, like the featurizer and the extractor in config.yml
        self._compiled = [re.compile(p, re.IGNORECASE) for p in self._patterns]

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "OtherBusinessGate":
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "OtherBusinessGate":
        try:
            with model_storage.read_from(resource) as folder:
                patterns = json.loads((folder / _FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            patterns = []
        return cls(config, model_storage, resource, patterns)

    def train(self, training_data: TrainingData) -> Resource:
        patterns = [
            p["pattern"]
            for p in extract_patterns(training_data, use_only_entities=False, use_word_boundaries=False)
            if p["name"] == self._config["patterns"]
        ]
        with self._storage.write_to(self._resource) as folder:
            (folder / _FILE).write_text(json.dumps(patterns, ensure_ascii=False), encoding="utf-8")
        return self._resource

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            ranking = message.get(INTENT_RANKING)
            text = message.get(TEXT) or ""
            if ranking and names_another_business(text, self._compiled):
                self._put_out_of_scope_first(message, ranking)
        return messages

    def _put_out_of_scope_first(self, message: Message, ranking: List[Dict[Text, Any]]) -> None:
        """Swaps the confidences of the top intent and out_of_scope (0 when unranked)."""
        oos = self._config["out_of_scope"]
        top = ranking[0]
        if top[INTENT_NAME_KEY] in (oos, *self._config["keep"]):
            return
        was = next((r[PREDICTED_CONFIDENCE_KEY] for r in ranking if r[INTENT_NAME_KEY] == oos), 0.0)
        swapped = [{INTENT_NAME_KEY: oos, PREDICTED_CONFIDENCE_KEY: top[PREDICTED_CONFIDENCE_KEY]}]
        swapped += [
            {**r, PREDICTED_CONFIDENCE_KEY: was} if r is top else r
            for r in ranking
            if r[INTENT_NAME_KEY] != oos
        ]
        swapped.sort(key=lambda r: -r[PREDICTED_CONFIDENCE_KEY])
        message.set(INTENT, dict(swapped[0]), add_to_output=True)
        message.set(INTENT_RANKING, swapped, add_to_output=True)
