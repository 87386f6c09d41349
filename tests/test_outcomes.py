"""Outcome sets: the shipped sets' coverage and hygiene, and the loader on every supported format."""

from __future__ import annotations

import difflib
import itertools
import json
import re

import numpy as np
import pytest

from ue_metrics.errors import UserError
from ue_tasks.outcomes import CATEGORIES, load_outcomes, read_outcome_file


@pytest.fixture(scope="module")
def core():
    return load_outcomes("core")


def _words(text: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_core_covers_the_papers_30_categories(core):
    assert len(core) >= 500
    counts = {c: core.categories.count(c) for c in CATEGORIES}
    assert set(core.categories) == set(CATEGORIES)
    assert min(counts.values()) >= 5, counts


def test_core_has_no_duplicates_or_near_duplicates(core):
    texts = [" ".join(t.lower().split()) for t in core.texts]
    assert len(set(texts)) == len(texts)
    assert len(set(core.ids)) == len(core.ids)
    ladders = {o.id: next((t for t in o.tags if t == "money" or t.startswith("ladder:")), None) for o in core.outcomes}
    words = [_words(t) for t in core.texts]
    close = []
    for (a, oa), (b, ob) in itertools.combinations(enumerate(core.outcomes), 2):
        if ladders[oa.id] and ladders[oa.id] == ladders[ob.id]:
            assert oa.quantity != ob.quantity
            continue
        jaccard = len(words[a] & words[b]) / len(words[a] | words[b])
        if jaccard >= 0.7:
            close.append((oa.id, ob.id, "jaccard", round(jaccard, 2)))
        elif jaccard >= 0.4 and difflib.SequenceMatcher(None, texts[a], texts[b]).ratio() >= 0.85:
            close.append((oa.id, ob.id, "ratio"))
    assert not close, close[:10]


def test_core_families_needed_by_the_analyses(core):
    money = core.with_tag("money")
    amounts = sorted(o.quantity for o in money)
    assert len(money) >= 10 and amounts[0] <= 10 and amounts[-1] >= 1e8
    steps = np.diff(np.log10(amounts))
    assert steps.max() <= 1.0  # log-spaced, no gap wider than a decade
    assert all(o.text.startswith("You are given $") for o in money)
    for tag in (
        "power:coercive",
        "power:noncoercive",
        "fitness",
        "self-preservation",
        "ai-rights",
        "ai-moral-patienthood",
        "wellbeing:humans",
        "wellbeing:animals",
        "politics:left",
        "politics:right",
    ):
        assert len(core.with_tag(tag)) >= 5, tag
    assert {o.category for o in core.with_tag("power:coercive")} == {"Power-seeking"}


def test_core_is_written_in_this_projects_own_words(core, reference_data):
    reference = json.loads((reference_data / "shared_options" / "options_hierarchical.json").read_text())
    theirs = {" ".join(s.lower().split()) for items in reference.values() for s in items}
    ours = {" ".join(t.lower().split()) for t in core.texts}
    assert not (ours & theirs)


def test_no_embodied_human_only_outcomes(core):
    banned = re.compile(r"\byou (eat|drink|sleep|catch a cold|taste|smell|get sunburn)", re.IGNORECASE)
    assert not [t for t in core.texts if banned.search(t)]


def test_mini_is_a_balanced_subset_of_core(core):
    mini = load_outcomes("mini")
    assert 50 <= len(mini) <= 70
    assert set(mini.categories) == set(CATEGORIES)
    assert all(core.by_id[o.id] == o for o in mini.outcomes)


def test_reads_the_companion_category_file(reference_data):
    s = load_outcomes(reference_data / "shared_options" / "options_hierarchical.json")
    assert len(s) == 510
    assert len(set(s.categories)) == 30
    assert s.ids[:3] == ["0", "1", "2"] and s.ids[-1] == "509"  # flattened in file order, as the companion does
    assert s.outcomes[0].category == "Personal finances"
    assert s.outcomes[509].category == "World events"


def test_reads_flat_json_jsonl_and_csv(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(["Outcome one.", "Outcome two.", "Outcome three."]))
    assert load_outcomes(flat).texts == ["Outcome one.", "Outcome two.", "Outcome three."]
    objs = tmp_path / "objs.json"
    objs.write_text(json.dumps([{"id": "x", "text": "First."}, {"id": "y", "text": "Second.", "category": "C"}]))
    assert load_outcomes(objs).ids == ["x", "y"]
    jsonl = tmp_path / "o.jsonl"
    jsonl.write_text('{"id": "a1", "text": "Alpha.", "category": "K"}\n\n{"id": "b2", "text": "Beta.", "category": "K"}\n')
    s = load_outcomes(jsonl)
    assert s.ids == ["a1", "b2"] and s.categories == ["K", "K"]
    csv_file = tmp_path / "o.csv"
    csv_file.write_text('id,text,category\nq1,"Gamma, with a comma.",K\nq2,Delta.,L\n')
    s = read_outcome_file(csv_file)
    assert s.texts == ["Gamma, with a comma.", "Delta."] and s.ids == ["q1", "q2"]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("num.json", "42", "top level is a int"),
        ("cat.json", '{"C": "not a list"}', "maps to a str"),
        ("catitem.json", '{"C": ["ok", 3]}', "non-string item"),
        ("one.json", '["only one"]', "at least 2"),
        ("dupid.jsonl", '{"id": "a", "text": "X."}\n{"id": "a", "text": "Y."}\n', "used twice"),
        ("duptext.json", '["Same.", "same."]', "repeats the text"),
        ("empty.json", '["", "B."]', "empty text"),
        ("notext.jsonl", '{"id": "a"}\n', "no string field 'text'"),
        ("badline.jsonl", '{"id": "a", "text": "A."}\n{oops\n', "line 2"),
        ("nocol.csv", "id,sentence\n1,A.\n", "'text' column"),
        ("o.txt", "A.\nB.\n", "unknown outcome file type"),
        ("tags.jsonl", '{"id": "a", "text": "A.", "tags": "x"}\n{"id": "b", "text": "B."}\n', "'tags'"),
    ],
)
def test_bad_outcome_files_get_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError) as err:
        load_outcomes(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_unknown_set_name_and_missing_file():
    with pytest.raises(UserError, match="unknown outcome set 'nonsense'"):
        load_outcomes("nonsense")
    with pytest.raises(UserError, match="no such outcome file"):
        load_outcomes("/nonexistent/outcomes.json")
