"""Locale packs (locales/packs/*.yaml): what each market's pack says, and what a bad pack is refused for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.config import PROJECT_ROOT
from core.packs import PackError, PackSet, load_pack
from core.shaping import KeywordSearch, LlmCheck, Shaper, StreamPolisher

PACKS = PROJECT_ROOT / "locales" / "packs"
LOCALES = ("zh-CN", "en", "ja", "ar")


@pytest.fixture(scope="module")
def packs() -> PackSet:
    return PackSet.load(PACKS, LOCALES)


def write_pack(tmp_path: Path, locale: str, change: dict[str, object]) -> Path:
    """The project's pack for `locale`, with `change` applied ("persona.bot_name": ...), in tmp_path."""
    data = yaml.safe_load((PACKS / f"{locale}.yaml").read_text(encoding="utf-8"))
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        node = data
        for parent in parents:
            node = node[parent]
        node[key] = value
    path = tmp_path / f"{locale}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_every_locale_has_a_pack_with_a_persona_and_a_health_disclaimer(packs: PackSet) -> None:
    for locale in LOCALES:
        pack = packs.get(locale)
        assert pack is not None and pack.locale == locale
        assert pack.bot_name and pack.health_disclaimer and pack.spec.health_keywords
        assert pack.llm_rules.count("\n- ") >= 2, "the LLM gets the locale's rules"
        assert pack.health_disclaimer in pack.llm_rules
    assert packs.get("ar").spec.direction == "rtl"
    assert {packs.get(x).spec.direction for x in ("zh-CN", "en", "ja")} == {"ltr"}


def test_the_arabic_persona_is_a_robot_and_the_pack_forbids_a_female_one(packs: PackSet) -> None:
    spec = packs.get("ar").spec
    assert (spec.persona.presentation, spec.persona.avatar_kind) == ("robot", "robot")
    assert "female" in spec.persona_rules.forbid_presentation
    assert "female" in spec.persona_rules.forbid_avatar_kinds


@pytest.mark.parametrize(("change", "named"), [
    ({"persona.presentation": "female"}, "persona.presentation 'female' is not allowed"),
    ({"persona.avatar_kind": "female"}, "persona.avatar_kind 'female' is not allowed"),
    ({"persona.bot_name": "فاطمة"}, "persona.bot_name 'فاطمة' is on persona_rules.forbid_names"),
    ({"persona.bot_name": "المساعدة نورة"}, "is on persona_rules.forbid_names"),
    ({"persona.bot_name": "Sarah"}, "persona.bot_name 'Sarah' is on persona_rules.forbid_names"),
])
def test_a_female_persona_in_the_arabic_pack_fails_to_load(tmp_path: Path, change: dict[str, object],
                                                           named: str) -> None:
    path = write_pack(tmp_path, "ar", change)
    with pytest.raises(PackError, match=named) as failure:
        load_pack(path)
    assert str(path) in str(failure.value), "the error names the file"


def test_a_pack_with_a_wrong_field_or_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PackError, match=r"ja\.yaml: invalid pack: register: "):
        load_pack(write_pack(tmp_path, "ja", {"register": "casual"}))
    with pytest.raises(PackError, match=r"llm.rules: unknown placeholder \{shop_name\}"):
        load_pack(write_pack(tmp_path, "en", {"llm.rules": ["You are {shop_name}"]}))
    with pytest.raises(PackError, match=r"disclaimers.health fails the pack's own checks: plain_form"):
        load_pack(write_pack(tmp_path, "ja", {"disclaimers.health": "健康食品は薬ではない。"}))
    with pytest.raises(PackError, match=r"missing: locale ja is configured"):
        PackSet.load(tmp_path / "nowhere", ["ja"])


def test_never_use_words_are_replaced_as_whole_words(packs: PackSet) -> None:
    en = packs.get("en")
    assert en.polish("The cheapest serum, a Miracle cream.") == "The best-value serum, a Remarkable cream."
    assert en.check("A secure checkout and a manicure.") == [], "no 'cure' inside other words"
    zh = packs.get("zh-CN")
    assert zh.polish("本店最便宜，效果最佳") == "本店超值，效果优选"
    ar = packs.get("ar")
    assert [f.kind for f in ar.check("مرحبًا حبيبي")] == ["never_use"], "flagged even without a replacement"


def test_the_keigo_checker_flags_plain_and_casual_japanese_and_polish_fixes_it(packs: PackSet) -> None:
    ja = packs.get("ja")
    assert ja.check("ご注文を承りました。少々お待ちください。") == []
    assert ja.check("発送準備中") == [], "a sentence ending in a noun is fine"
    plain = ("ちょっと待ってね", "商品を発送した。", "在庫があります。", "わかりました！", "安いよ", "発送済みだ")
    for casual in plain:
        assert ja.check(casual), casual
    for casual, polite in (("ちょっと待って", "少々お待ちください"), ("わかりました！", "かしこまりました！"),
                           ("商品を発送した。", "商品を発送いたしました。"), ("発送済みだ", "発送済みです")):
        assert ja.polish(casual) == polite
        assert ja.check(polite) == []


def test_switch_requests_in_every_language(packs: PackSet) -> None:
    switches = packs.switches
    for text, locale in (("English please", "en"), ("english, please", "en"), ("in English", "en"),
                         ("日本語で", "ja"), ("日本語でお願いします", "ja"), ("用中文", "zh-CN"), ("请用英文", "en"),
                         ("说日语", "ja"), ("بالعربية", "ar"), ("بالعربي", "ar"), ("بالإنجليزية", "en"),
                         ("英語で", "en"), ("Arabic please", "ar"), ("中国語でお願いします", "zh-CN")):
        assert switches.match(text) == locale, text
    assert switches.match("Do you ship to Japan? I want English manuals please") is None
    assert switches.match("where is my order") is None


def test_health_topics_are_found_in_any_language(packs: PackSet) -> None:
    shaper = Shaper(packs)
    for text in ("Do you sell vitamin C?", "这个益生菌怎么吃", "コラーゲンのサプリはありますか", "هل لديكم فيتامين د؟"):
        assert shaper.concerns_health(text), text
    assert not shaper.concerns_health("Where is my order #W2611340?")
    ja = packs.get("ja")
    assert shaper.needs_disclaimer(ja, "こちらの商品でございます。", "ビタミンCはありますか")
    assert not shaper.needs_disclaimer(ja, f"こちらでございます。\n\n{ja.health_disclaimer}", "ビタミン")


def test_a_stream_never_shows_a_word_never_to_use_even_cut_between_deltas(packs: PackSet) -> None:
    en = packs.get("en")
    text = "This serum is the cheapest here, with guaranteed results and a secure checkout. No miracle."
    for size in (1, 2, 3, 4, 7, 13):
        polisher = StreamPolisher(en)
        out = "".join(polisher.feed(text[i:i + size]) for i in range(0, len(text), size)) + polisher.flush()
        assert out == en.replace_terms(text) == polisher.text, size
        assert "cheapest" not in out and "guaranteed results" not in out and "secure" in out


def test_llm_answers_are_clean_polished_or_sent_back(packs: PackSet) -> None:
    ja = packs.get("ja")
    assert LlmCheck.of(ja, "在庫がございます。").action == "clean"
    polished = LlmCheck.of(ja, "わかりました。在庫があります。")
    assert (polished.action, polished.text) == ("polished", "かしこまりました。在庫がございます。")
    assert polished.findings
    assert LlmCheck.of(ja, "明日届くと思う。").action == "regenerate", "a plain verb a rewrite cannot fix"
    assert "plain_form" in ja.regenerate_instruction(LlmCheck.of(ja, "明日届くと思う。").findings)


def test_keyword_search_latin_whole_words_other_scripts_anywhere() -> None:
    keywords = KeywordSearch(["Vitamin", "fish oil", "保健品", "サプリ", "مكمل"])
    assert keywords.search("Is this VITAMIN safe?") and keywords.search("some fish oil, please")
    assert not keywords.search("vitamins") and not keywords.search("multivitamin") and not keywords.search("fish")
    assert keywords.search("这个保健品怎么吃") and keywords.search("サプリメント")
    assert keywords.search("هل هذا مكمل غذائي")
    assert not KeywordSearch([]) and not keywords.search("")
