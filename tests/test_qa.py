"""Extractive question answering (issue 14): the official metric, SQuAD reading and validation, the reader trained
on a tiny hand-made file (real MiniLM), saving and loading, the ``qa`` command line, question synthesis."""

from __future__ import annotations

import json
import re
import string
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import run_runtime_only
from transferlab.cli import main
from transferlab.data.qa_synthesis import synthesize
from transferlab.data.squad import align_answer, read_passages, read_squad
from transferlab.errors import DataError, UserError
from transferlab.evaluation_qa import squad_metrics


# --- the official SQuAD v1.1 evaluation script (evaluate-v1.1.py), its functions copied as the reference ---------
def off_normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def off_f1_score(prediction, ground_truth):
    prediction_tokens = off_normalize_answer(prediction).split()
    ground_truth_tokens = off_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def off_exact_match_score(prediction, ground_truth):
    return (off_normalize_answer(prediction) == off_normalize_answer(ground_truth))


def off_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def off_evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article['paragraphs']:
            for qa in paragraph['qas']:
                total += 1
                if qa['id'] not in predictions:
                    message = 'Unanswered question ' + qa['id'] + ' will receive score 0.'
                    print(message, file=sys.stderr)
                    continue
                ground_truths = list(map(lambda x: x['text'], qa['answers']))
                prediction = predictions[qa['id']]
                exact_match += off_metric_max_over_ground_truths(
                    off_exact_match_score, prediction, ground_truths)
                f1 += off_metric_max_over_ground_truths(
                    off_f1_score, prediction, ground_truths)

    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total

    return {'exact_match': exact_match, 'f1': f1}
# --- end of the official functions ---------------------------------------------------------------------------------


# a tiny hand-made SQuAD v1.1 file: 4 passages, 20 questions
PASSAGES = [
    ("Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891 to study physics at the Sorbonne. In 1903 "
     "she shared the Nobel Prize in Physics with Pierre Curie and Henri Becquerel. She later discovered the elements "
     "polonium and radium.",
     [("Where was Marie Curie born?", "Warsaw"), ("In which year was Marie Curie born?", "1867"),
      ("Where did she study physics in Paris?", "the Sorbonne"),
      ("Which prize did she share in 1903?", "the Nobel Prize in Physics"),
      ("Which elements did she discover?", "polonium and radium")]),
    ("The Danube is the second-longest river in Europe, flowing for about 2,850 kilometres. It rises in the Black "
     "Forest of Germany and empties into the Black Sea. Ten countries lie along its course, including Austria, "
     "Hungary and Romania. Vienna and Budapest are among the capitals it passes.",
     [("How long is the Danube?", "about 2,850 kilometres"), ("Where does the Danube rise?", "the Black Forest"),
      ("Into which sea does the Danube empty?", "the Black Sea"),
      ("How many countries lie along the course of the Danube?", "Ten"),
      ("Which capitals does the Danube pass?", "Vienna and Budapest")]),
    ("The espresso machine was patented by Angelo Moriondo in Turin in 1884. Modern machines force water at a "
     "pressure of about nine bars through finely ground coffee. A single shot takes roughly 25 seconds to pull and "
     "yields about 30 millilitres of coffee.",
     [("Who patented the espresso machine?", "Angelo Moriondo"),
      ("In which city was the espresso machine patented?", "Turin"),
      ("At what pressure do modern machines force water through the coffee?", "about nine bars"),
      ("How long does a single shot take to pull?", "roughly 25 seconds"),
      ("How much coffee does a single shot yield?", "about 30 millilitres")]),
    ("Honeybees communicate the location of food with a waggle dance. The angle of the dance shows the direction of "
     "the flowers relative to the sun, and its duration shows the distance. A colony can contain up to 60,000 "
     "workers but only one queen, who lays up to 2,000 eggs a day.",
     [("How do honeybees communicate the location of food?", "with a waggle dance"),
      ("What does the angle of the dance show?", "the direction of the flowers"),
      ("What does the duration of the dance show?", "the distance"),
      ("How many workers can a colony contain?", "up to 60,000"),
      ("How many eggs does the queen lay a day?", "up to 2,000")]),
]


def squad_doc(passages=PASSAGES) -> dict:
    data = []
    for p, (context, qas) in enumerate(passages):
        rows = []
        for q, (question, ans) in enumerate(qas):
            assert ans in context, ans
            rows.append({"id": f"p{p}q{q}", "question": question,
                         "answers": [{"text": ans, "answer_start": context.index(ans)}]})
        data.append({"title": f"passage {p}", "paragraphs": [{"context": context, "qas": rows}]})
    return {"version": "1.1", "data": data}


@pytest.fixture()
def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(squad_doc()))
    return path


# --- metric --------------------------------------------------------------------------------------------------------
def test_metric_equals_the_official_script():
    context = "x"
    qas = [  # (gold answers, prediction): articles, punctuation, unicode, empty, several golds, partial overlap
        (["the Eiffel Tower"], "Eiffel Tower"),
        (["The Beatles"], "the beatles."),
        (["an apple a day"], "apple day"),
        (["Zürich, Switzerland"], "zürich"),
        (["Năm 1945"], "năm 1945!"),
        (["42"], ""),
        (["1,000 km", "one thousand kilometres", "1000 km"], "1000 km"),
        (["Denver Broncos", "Broncos", "the Denver Broncos"], "Denver Broncos defeated the Carolina Panthers"),
        (["New York City"], "New York New York"),
        (["it's — complicated"], "its complicated"),
        (["a"], "the"),
        (["Paris"], "London"),
        (["«Les Misérables»"], "Les Misérables"),
        (["  spaced   out  "], "spaced out"),
    ]
    dataset = [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": str(i), "question": "q", "answers": [{"text": g, "answer_start": 0} for g in golds]}
        for i, (golds, _) in enumerate(qas)]}]}]
    predictions = {str(i): pred for i, (_, pred) in enumerate(qas)}
    del predictions["3"]  # an unanswered question scores 0 in both
    expected = off_evaluate(dataset, predictions)

    class Ex:
        def __init__(self, i, golds):
            self.id, self.question, self.answers = str(i), "q", [{"text": g} for g in golds]

    ours = squad_metrics([Ex(i, g) for i, (g, _) in enumerate(qas)], predictions)
    assert ours["count"] == len(qas)
    assert abs(ours["exact_match"] - expected["exact_match"]) < 1e-6
    assert abs(ours["f1"] - expected["f1"]) < 1e-6
    assert 0 < ours["f1"] < 100 and 0 < ours["exact_match"] < 100  # the fixture has both right and wrong answers
    by_id = {r["id"]: r for r in ours["per_question"]}
    assert by_id["7"]["exact_match"] == 0 and 0 < by_id["7"]["f1"] < 1


# --- data -----------------------------------------------------------------------------------------------------------
def test_wrong_answer_start_is_realigned_and_unfindable_answer_skipped(tmp_path: Path):
    doc = squad_doc()
    qas = doc["data"][0]["paragraphs"][0]["qas"]
    qas[0]["answers"][0]["answer_start"] += 7  # "Warsaw" shifted: realigned to the nearest occurrence
    qas[1]["answers"][0]["text"] = "1999"  # nowhere in the passage: the question is skipped and reported
    doc["data"][1]["paragraphs"][0]["context"] = "   "  # an empty context: its 5 questions are skipped
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    examples, report = read_squad(path)
    assert len(examples) == 20 - 1 - 5
    warsaw = next(e for e in examples if e.id == "p0q0")
    start = warsaw.answers[0]["answer_start"]
    assert warsaw.context[start : start + 6] == "Warsaw"
    reasons = {s["path"]: s["reason"] for s in report.skipped}
    assert "p0q1" in reasons and "not in the context" in reasons["p0q1"]
    assert any("empty or missing context" in r for r in reasons.values())
    assert any("realigned" in n for n in report.notes)
    # the closest of several occurrences wins
    assert align_answer("cat dog cat dog", "dog", 13) == 12 and align_answer("cat dog cat dog", "dog", 5) == 4


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON"),
    ('{"version": "1.1"}', "not a SQuAD file"),
    ('{"data": [{"title": "t", "paragraphs": [{"context": "", "qas": []}]}]}', "no usable questions"),
])
def test_bad_files_exit_2_with_one_line(tmp_path: Path, capsys, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(DataError):
        read_squad(path)
    code = main(["qa", "train", str(path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_reader_parameter_of_the_wrong_type_exits_2_before_training(tiny_file: Path, tmp_path: Path, capsys):
    for param, message in (("epochs=abc", "parameter epochs must be a whole number or null, got 'abc'"),
                           ("lr=[1]", "parameter lr must be a number or null")):
        code = main(["--quiet", "qa", "train", str(tiny_file), "--param", param, "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_read_passages_txt_and_json(tmp_path: Path, tiny_file: Path):
    txt = tmp_path / "docs.txt"
    txt.write_text(PASSAGES[0][0] + "\n\nshort\n\n" + PASSAGES[1][0] + "\n\n" + PASSAGES[0][0] + "\n")
    assert read_passages(txt) == [PASSAGES[0][0], PASSAGES[1][0]]
    assert read_passages(tiny_file) == [p for p, _ in PASSAGES]
    with pytest.raises(DataError):
        read_passages(tmp_path / "missing.txt")


# --- synthesis ------------------------------------------------------------------------------------------------------
def test_synthesised_questions_are_well_formed():
    examples = synthesize([p for p, _ in PASSAGES], per_passage=4, seed=0)
    assert len(examples) >= 12
    assert len({e.id for e in examples}) == len(examples)
    kinds = set()
    for e in examples:
        ans = e.answers[0]
        assert e.context[ans["answer_start"] : ans["answer_start"] + len(ans["text"])] == ans["text"]
        assert e.question.endswith("?") and (e.question[0].isupper() or e.question[0].isdigit())
        assert ans["text"] not in e.question  # the answer is what the question asks for
        wh = next(w for w in ("what year", "how many", "how much", "who", "where", "what") if w in e.question.lower())
        kinds.add(wh)
        assert len(e.question.split()) >= 5
    assert {"what year", "how many"} <= kinds  # years and numbers are found
    assert synthesize([p for p, _ in PASSAGES], per_passage=4, seed=0)[0].question == examples[0].question


def test_reader_recipe_follows_the_cpu_and_given_parameters_win(monkeypatch):
    """No body named: MiniLM. On a CPU with bf16 matrix units where mpnet is installed it is distilled from an mpnet
    teacher trained in the run (2 epochs, 2e-4, bf16), else trained alone (3 epochs, 2e-4, float32); a named body
    takes its own recipe and no teacher; given values always win."""
    from transferlab.backbones import get_backbone
    from transferlab.strategies.qa_reader import QAReader

    def key(r: dict) -> tuple:
        return r["backbone"], r["teacher"], r["epochs"], r["lr"], r["bf16"]

    monkeypatch.setenv("TRANSFERLAB_BF16", "0")
    r = QAReader().recipe()
    assert key(r) == ("minilm", None, 3, 2e-4, False) and "AMX" in r["reason"]
    assert key(QAReader(backbone="mpnet").recipe()) == ("mpnet", None, 1, 5e-5, False)
    assert key(QAReader(epochs=2, lr=1e-4, bf16=True).recipe()) == ("minilm", None, 2, 1e-4, True)
    monkeypatch.setenv("TRANSFERLAB_BF16", "1")
    r = QAReader().recipe()
    if get_backbone("mpnet").is_installed():
        assert key(r) == ("minilm", "mpnet", 2, 2e-4, True) and "33%" in r["reason"]
        assert key(QAReader(teacher_fraction=0.25, epochs=1).recipe()) == ("minilm", "mpnet", 1, 2e-4, True)
    else:
        assert key(r) == ("minilm", None, 3, 2e-4, True) and "not installed" in r["reason"]
    assert key(QAReader(teacher=None).recipe()) == ("minilm", None, 3, 2e-4, True)  # no teacher: MiniLM alone
    assert key(QAReader(backbone="minilm", bf16=False).recipe()) == ("minilm", None, 3, 2e-4, False)
    assert key(QAReader(backbone="mpnet").recipe()) == ("mpnet", None, 1, 5e-5, True)
    # AVX512-BF16 (AMD Zen 4): bf16, but the mpnet teacher trains ~2.5x slower than with AMX: MiniLM alone, in bf16
    import transferlab._torch as tt

    monkeypatch.delenv("TRANSFERLAB_BF16")
    monkeypatch.setattr(tt, "bf16_units", lambda: "avx512_bf16")
    r = QAReader().recipe()
    assert key(r) == ("minilm", None, 3, 2e-4, True) and tt.native_bf16()
    if get_backbone("mpnet").is_installed():
        assert "AVX512-BF16" in r["reason"] and "--teacher mpnet" in r["reason"]
    assert key(QAReader(teacher="mpnet").recipe())[:2] == ("minilm", "mpnet")  # asked for: trained
    with pytest.raises(UserError, match="epochs"):
        QAReader(epochs=0).fit([])  # checked before anything is loaded


def test_bf16_units_follow_the_override_and_the_cpu(monkeypatch):
    """TRANSFERLAB_BF16 wins (1: as with AMX, 0: float32); else the CPU's own answer, one of three."""
    import transferlab._torch as tt

    monkeypatch.setenv("TRANSFERLAB_BF16", "1")
    assert tt.bf16_units() == "amx" and tt.native_bf16()
    monkeypatch.setenv("TRANSFERLAB_BF16", "0")
    assert tt.bf16_units() is None and not tt.native_bf16()
    monkeypatch.delenv("TRANSFERLAB_BF16")
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    expected = "amx" if "amx_tile" in flags else "avx512_bf16" if "avx512_bf16" in flags else None
    if flags and tt.torch_device() == "cpu":
        assert tt.bf16_units() == expected
    assert tt.native_bf16() == (tt.bf16_units() is not None)


# --- the reader (a real MiniLM body) ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """The tiny file; its F1/EM before training (random head) and the reader trained on it, saved."""
    import torch

    from transferlab.nn.qa import SpanReader, answer
    from transferlab.nn.transformer import load_pretrained_body
    from transferlab.workflows.qa import train_reader

    d = tmp_path_factory.mktemp("qa")
    data = d / "tiny.json"
    data.write_text(json.dumps(squad_doc()))
    examples, _ = read_squad(data)
    torch.manual_seed(0)
    body, tokenizer = load_pretrained_body()
    before_answers = answer(SpanReader(body).eval(), tokenizer, [e.question for e in examples],
                            [e.context for e in examples], 128, 32)
    before = squad_metrics(examples, {e.id: a["answer"] for e, a in zip(examples, before_answers, strict=True)})
    params = {"epochs": 6, "batch_size": 10, "max_length": 128, "stride": 32, "lr": 3e-4, "head_lr": 3e-3,
              "body_dropout": None}  # the tiny reader keeps some dropout, or it answers no cloze question
    result = train_reader(data, out=d / "reader", params=params, eval_data=data)
    return data, examples, before, result


@pytest.mark.slow
def test_training_moves_answers_from_wrong_to_right_spans(trained):
    _, _, before, result = trained
    after = result.metrics
    assert before["f1"] < 30
    print("before", before["exact_match"], before["f1"], "after", after["exact_match"], after["f1"])
    assert after["f1"] > before["f1"] + 30 and after["exact_match"] > before["exact_match"] + 30
    fixed = [r for r in json.loads((result.out / "per_question.json").read_text()) if r["exact_match"] == 1]
    wrong_before = {r["id"] for r in before["per_question"] if r["exact_match"] == 0}
    assert len(wrong_before & {r["id"] for r in fixed}) >= 6


@pytest.mark.slow
def test_saved_reader_loads_and_answers_identically(trained):
    from transferlab.model import load_model
    from transferlab.workflows.qa import load_reader

    _, examples, _, result = trained
    saved = load_reader(result.out)
    questions, contexts = [e.question for e in examples], [e.context for e in examples]
    assert saved.answer(questions, contexts) == result.reader.answer(questions, contexts)
    config = json.loads((result.out / "config.json").read_text())
    assert config["task"] == "qa" and config["weights"]["kind"] == "qa_reader"
    metrics = json.loads((result.out / "metrics.json").read_text())
    assert {"f1", "exact_match", "train_seconds"} <= set(metrics)
    assert {k: metrics["recipe"][k] for k in ("backbone", "epochs", "lr", "bf16")} == {
        "backbone": "minilm", "epochs": 6, "lr": 3e-4, "bf16": False}  # the fixture's values; TRANSFERLAB_BF16=0
    with pytest.raises(Exception, match="question-answering reader"):
        load_model(result.out).predict(["a text"])


@pytest.mark.slow
def test_bf16_answering_gives_the_float32_answers(trained, monkeypatch):
    """On CPUs with bf16 matrix units a loaded reader answers in bf16 (``TRANSFERLAB_BF16`` overrides the check):
    its linear layers are cast once, and its answers are the float32 reader's."""
    import torch

    from transferlab._torch import native_bf16
    from transferlab.strategies.qa_reader import QAReader
    from transferlab.workflows.qa import load_reader

    _, examples, _, result = trained
    questions, contexts = [e.question for e in examples], [e.context for e in examples]
    monkeypatch.setenv("TRANSFERLAB_BF16", "0")
    assert not native_bf16()
    fp32 = load_reader(result.out)
    monkeypatch.setenv("TRANSFERLAB_BF16", "1")
    assert native_bf16()
    bf16 = load_reader(result.out)
    assert bf16.bf16 and not fp32.bf16
    assert QAReader(init=str(result.out)).recipe()["backbone"] == "minilm"  # a started reader keeps its body
    assert bf16.net.head.weight.dtype == torch.bfloat16 and fp32.net.head.weight.dtype == torch.float32
    want, got = fp32.answer(questions, contexts), bf16.answer(questions, contexts)
    assert sum(w["answer"] == g["answer"] for w, g in zip(want, got, strict=True)) >= len(want) - 1
    assert max(abs(w["score"] - g["score"]) for w, g in zip(want, got, strict=True)) < 0.1


@pytest.mark.slow
def test_cli_ask_and_evaluate_json(trained, tmp_path: Path, capsys):
    data, _, _, result = trained
    ctx = tmp_path / "passage.txt"
    ctx.write_text(PASSAGES[2][0])
    code = main(["qa", "ask", str(result.out), "--context", str(ctx), "--question", "Who patented the espresso "
                 "machine?", "--question", "In which city was the espresso machine patented?", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert [a["question"] for a in doc["answers"]][0].startswith("Who patented")
    for a in doc["answers"]:
        assert set(a) == {"question", "answer", "score", "start"}
        assert 0 <= a["score"] <= 1 and PASSAGES[2][0][a["start"] : a["start"] + len(a["answer"])] == a["answer"]
    assert doc["answers"][1]["answer"] == "Turin"
    assert main(["qa", "evaluate", str(result.out), str(data), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["count"] == 20 and abs(ev["f1"] - result.metrics["f1"]) < 1e-9
    # a model folder that is not a reader, a missing context file: exit 2, one line
    assert main(["qa", "ask", str(tmp_path), "--context", str(ctx), "--question", "q"]) == 2
    assert main(["qa", "ask", str(result.out), "--context", str(tmp_path / "nope.txt"), "--question", "q"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_roundtrip_keeps_only_questions_the_reader_answers_with_their_answer():
    from transferlab.workflows.qa import roundtrip_consistent

    examples = synthesize([p for p, _ in PASSAGES], per_passage=4, seed=0)
    assert len(examples) >= 6

    class Reader:  # answers right (up to SQuAD normalisation) every other question, wrongly the rest
        def answer(self, questions, contexts, batch_size=32, progress=None):
            assert questions == [e.question for e in examples] and contexts == [e.context for e in examples]
            return [{"answer": ("The " + e.answers[0]["text"].upper() + ".") if i % 2 == 0 else "something else"}
                    for i, e in enumerate(examples)]

    kept = roundtrip_consistent(Reader(), examples)
    assert [e.id for e in kept] == [e.id for e in examples[::2]]


@pytest.mark.slow
def test_cli_adapt_keeps_consistent_questions_and_saves_a_reader(trained, tmp_path: Path, capsys):
    from transferlab.workflows.qa import load_reader

    data, examples, _, result = trained
    text = tmp_path / "domain.txt"
    text.write_text("\n\n".join(p for p, _ in PASSAGES))
    out = tmp_path / "adapted"
    code = main(["qa", "adapt", str(result.out), str(text), "--out", str(out), "--param", "max_length=128",
                 "--param", "stride=32", "--json"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert code == 0 and metrics["roundtrip"] is True
    assert 0 < metrics["kept_questions"] < metrics["synthesised_questions"]
    report = json.loads((out / "data_report.json").read_text())
    assert any("round-trip filter" in n for n in report["notes"])
    assert load_reader(out).answer([examples[0].question], [examples[0].context])[0]["answer"]
    # replay by default: the real questions the trained reader keeps (all 20 of its training questions) are mixed
    # in, and the adapted reader keeps them in turn; --no-replay mixes none in
    kept = read_squad(result.out / "replay.json")[0]
    assert sorted(e.id for e in kept) == sorted(e.id for e in examples)
    assert metrics["replay_questions"] == len(examples)
    assert metrics["train_questions"] == metrics["kept_questions"] + len(examples)
    assert sorted(e.id for e in read_squad(out / "replay.json")[0]) == sorted(e.id for e in examples)
    bare = tmp_path / "bare"
    assert main(["qa", "adapt", str(result.out), str(text), "--out", str(bare), "--no-replay", "--param",
                 "max_length=128", "--param", "stride=32"]) == 0
    bare_metrics = json.loads((bare / "metrics.json").read_text())
    assert bare_metrics["replay_questions"] == 0 and not (bare / "replay.json").exists()


def test_write_squad_reads_back_the_same_questions(tiny_file: Path, tmp_path: Path):
    from transferlab.data.squad import write_squad

    examples, _ = read_squad(tiny_file)
    write_squad(examples[::-1], tmp_path / "again.json")
    again, report = read_squad(tmp_path / "again.json")
    assert not report.skipped
    key = lambda e: (e.id, e.question, e.context, e.title, str(e.answers))  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, examples))


# --- compare on question-answering data ---------------------------------------------------------------------------
def test_noise_notes_tell_a_real_lead_from_noise():
    from transferlab.workflows.compare_qa import noise_notes

    first = {"strategy": "labels", "per_question_f1": [1.0, 1.0, 0.0, 1.0] * 50}
    same = {"strategy": "as_is", "per_question_f1": [1.0, 0.0, 1.0, 1.0] * 50}  # same mean, other questions
    worse = {"strategy": "scratch", "per_question_f1": [0.0, 1.0, 0.0, 0.0] * 50}
    notes = noise_notes([first, same, worse])
    assert "by 0.0 F1" in notes[0] and "within noise" in notes[0]
    assert notes[1].startswith("labels leads scratch by 50.0 F1") and "a real difference" in notes[1]


def test_split_by_passage_keeps_each_passage_on_one_side(tiny_file: Path):
    from transferlab.workflows.compare_qa import split_by_passage

    examples, _ = read_squad(tiny_file)
    train, test = split_by_passage(examples, 0.3, seed=0)
    assert {e.context for e in train}.isdisjoint({e.context for e in test})
    assert len(train) + len(test) == len(examples) and len(test) >= 0.3 * len(examples)
    assert split_by_passage(examples, 0.3, seed=0) == (train, test)  # seeded
    one = [e for e in examples if e.context == examples[0].context]
    with pytest.raises(UserError, match="at least 2 passages"):
        split_by_passage(one, 0.3, seed=0)


@pytest.mark.slow
def test_cli_compare_runs_the_transfer_strategies_side_by_side(trained, tmp_path: Path, capsys):
    from transferlab.workflows.qa import evaluate_reader, load_reader

    data, _, _, result = trained
    out = tmp_path / "bakeoff"
    code = main(["compare", str(data), "--init", str(result.out), "--out", str(out), "--val-fraction", "0.25",
                 "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    rows = doc["leaderboard"]
    ran = {r["strategy"] for r in rows} | {n.split()[0] for n in doc["notes"] if "did not run" in n}
    assert ran == {"as_is", "labels", "no_labels", "scratch"}
    noise = [n for n in doc["notes"] if "standard errors" in n]  # the first's lead over each other candidate
    assert len(noise) == len(rows) - 1 and all(n.startswith(rows[0]["strategy"] + " leads") for n in noise)
    assert [r["f1"] for r in rows] == sorted((r["f1"] for r in rows), reverse=True)
    train_ex, _ = read_squad(out / "split" / "train.json")
    test_ex, _ = read_squad(out / "split" / "test.json")
    assert {e.context for e in train_ex}.isdisjoint({e.context for e in test_ex})
    as_is = next(r for r in rows if r["strategy"] == "as_is")
    assert abs(as_is["f1"] - round(evaluate_reader(str(result.out), out / "split" / "test.json")["f1"], 2)) < 1e-9
    assert as_is["count"] == len(test_ex) and as_is["train_seconds"] == 0
    scratch = next(r for r in rows if r["strategy"] == "scratch")
    assert scratch["train_questions"] == len(train_ex)
    assert doc["winner"] == rows[0]["strategy"]
    assert load_reader(out / "best").answer([test_ex[0].question], [test_ex[0].context])[0]["answer"]
    assert "F1" in (out / "report.html").read_text() and (out / "leaderboard.csv").exists()
    # a second run on the same split reuses every finished candidate
    assert main(["compare", str(data), "--init", str(result.out), "--out", str(out), "--val-fraction", "0.25",
                 "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cached_runs"] == len(rows) and again["leaderboard"] == rows


def test_cli_compare_qa_without_a_reader_says_what_to_give(tiny_file: Path, tmp_path: Path, capsys):
    code = main(["compare", str(tiny_file), "--strategies", "labels", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--init READER" in err and len(err.strip().splitlines()) == 1
    code = main(["compare", str(tiny_file), "--init", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "config.json" in capsys.readouterr().err


# --- serving a reader -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_serve_answers_questions_about_a_passage_and_refuses_bad_bodies(trained):
    from starlette.testclient import TestClient

    from transferlab.deploy.backends import ModelBackend, OnnxBackend, open_backend
    from transferlab.deploy.server import create_app
    from transferlab.workflows.qa import ask

    _, _, _, result = trained
    context = PASSAGES[2][0]
    questions = ["Who patented the espresso machine?", "In which city was the espresso machine patented?"]
    model_backend = open_backend(result.out, prefer="model")
    assert isinstance(model_backend, ModelBackend) and model_backend.task == "qa"
    want = ask(result.out, context, questions)
    got = model_backend.predict([(q, context) for q in questions], 1)
    assert [(p["answer"], p["start"]) for p in got] == [(a["answer"], a["start"]) for a in want]
    backend = open_backend(result.out)  # exported to ONNX on the fly, as classifiers are
    assert isinstance(backend, OnnxBackend) and backend.task == "qa"
    with TestClient(create_app(backend, allowed_hosts=None)) as client:
        r = client.post("/predict", json={"context": context, "questions": questions})
        assert r.status_code == 200
        got = r.json()["predictions"]  # the same answers as `qa ask`
        assert [p["input"] for p in got] == questions
        assert [(p["answer"], p["start"]) for p in got] == [(a["answer"], a["start"]) for a in want]
        assert got[1]["answer"] == "Turin" and context[got[1]["start"]:].startswith("Turin")
        assert all(0 <= p["score"] <= 1 for p in got)
        assert client.get("/health").json()["task"] == "qa"
        schema = client.get("/openapi.json").json()
        body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["context", "questions"]
        for bad in [{"texts": ["x"]}, {"context": "", "questions": ["q"]}, {"context": context, "questions": []},
                    {"context": context, "questions": [""]}, {"context": context, "questions": "q"},
                    {"context": context, "questions": ["q"], "extra": 1}, {"context": context * 1000,
                                                                           "questions": ["q"]}]:
            r = client.post("/predict", json=bad)
            assert r.status_code == 422 and r.json()["error"], bad
        r = client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        r = client.post("/predict", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and "questions" in r.json()["error"]
        assert client.get("/").status_code == 200 and 'id="qa-panel"' in client.get("/").text


@pytest.mark.slow
def test_export_answers_as_the_reader_does_without_torch_or_transferlab(trained, tmp_path: Path, capsys):
    from transferlab.workflows.qa import load_reader

    _, examples, _, result = trained
    out = tmp_path / "reader_onnx"
    assert main(["export", str(result.out), "--out", str(out)]) == 0
    capsys.readouterr()
    info = json.loads((out / "export.json").read_text())
    assert info["task"] == "qa" and info["output"] == "span_logits"
    questions = [e.question for e in examples] + ["why " * 100 + "?"]  # a question cut at 64 tokens
    contexts = [e.context for e in examples] + [" ".join(p for p, _ in PASSAGES) * 3]  # a passage of many windows
    want = load_reader(result.out).answer(questions, contexts)
    got = run_runtime_only(out, f"""
        reader = load({str(out)!r})
        answers = reader.answer({questions!r}, {contexts!r})
        try:
            reader.predict(["a text"])
        except ValueError as exc:
            assert "answer(" in str(exc)
        else:
            raise AssertionError("predict() on a reader must refuse")
        print(json.dumps([[a["answer"], a["start"], a["score"]] for a in answers]))
    """, tmp_path)
    assert [(a, s) for a, s, _ in got] == [(w["answer"], w["start"]) for w in want]
    assert max(abs(sc - w["score"]) for (_, _, sc), w in zip(got, want, strict=True)) < 1e-4


@pytest.mark.slow
def test_body_dropout_sets_the_encoders_dropout_and_is_checked(tiny_file: Path):
    import torch

    from transferlab.strategies.qa_reader import QAReader

    examples, _ = read_squad(tiny_file)
    with pytest.raises(UserError, match="body_dropout"):
        QAReader(body_dropout=1.0).fit(examples)
    reader = QAReader(body_dropout=0.0, epochs=1, max_length=64, stride=16).fit(examples[:4])
    rates = {m.p for m in reader.net_.body.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.0} and reader.net_.body.config.attention_probs_dropout_prob == 0.0
    default = QAReader(body_dropout=None, epochs=1, max_length=64, stride=16).fit(examples[:4])  # encoder's own
    assert {m.p for m in default.net_.body.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}


@pytest.mark.slow
def test_an_mpnet_reader_trains_saves_and_exports_without_type_ids(tiny_file: Path, tmp_path: Path, capsys):
    """MPNet takes no token type ids: its reader trains, and its ONNX export (ids and mask in) answers as it does."""
    from transferlab.backbones import get_backbone
    from transferlab.workflows.qa import load_reader, train_reader

    if not get_backbone("mpnet").is_installed():
        pytest.skip("mpnet is not installed: scripts/setup.sh assembles it (`transferlab models` says how)")
    tiny_file.write_text(json.dumps(squad_doc(PASSAGES[:2])))  # 10 questions: enough to train, save and compare
    result = train_reader(tiny_file, out=tmp_path / "reader", params={"backbone": "mpnet", "epochs": 1,
                                                                      "max_length": 64, "stride": 16})
    config = json.loads((result.out / "config.json").read_text())
    assert config["weights"]["base"] == "mpnet"
    out = tmp_path / "reader_onnx"
    assert main(["export", str(result.out), "--out", str(out)]) == 0
    capsys.readouterr()
    info = json.loads((out / "export.json").read_text())
    assert info["inputs"][0]["type_ids"] is None
    examples, _ = read_squad(tiny_file)
    questions, contexts = [e.question for e in examples], [e.context for e in examples]
    want = load_reader(result.out).answer(questions, contexts)
    got = run_runtime_only(out, f"""
        answers = load({str(out)!r}).answer({questions!r}, {contexts!r})
        print(json.dumps([[a["answer"], a["start"], a["score"]] for a in answers]))
    """, tmp_path)
    assert [(a, s) for a, s, _ in got] == [(w["answer"], w["start"]) for w in want]
    assert max(abs(sc - w["score"]) for (_, _, sc), w in zip(got, want, strict=True)) < 1e-4


@pytest.mark.slow
def test_teacher_logits_reach_the_students_tokens_and_distillation_pulls_towards_the_teacher(trained):
    import torch

    from transferlab.model.qa_loaders import load_reader_net
    from transferlab.nn.qa import encode_windows, teacher_span_targets, window_logits
    from transferlab.strategies.qa_reader import DistillSpanObjective, QAReader

    data, examples, before, result = trained
    net, tokenizer, _ = load_reader_net(result.out)
    questions, contexts = [e.question for e in examples], [e.context for e in examples]
    windows = encode_windows(tokenizer, questions, contexts, 128, 32)
    own = window_logits(net, windows)
    soft = teacher_span_targets(net, tokenizer, questions, contexts, windows, 128, 32)
    for w, offs in enumerate(windows.offsets):  # one tokenizer: each context token takes its own logits
        ctx = np.asarray([o is not None for o in offs])
        assert np.allclose(soft[w][ctx], own[w][ctx], atol=1e-4)
        assert (soft[w][~ctx] == -1e4).all()  # no teacher mass on the question or special tokens
    # with the gold spans the teacher runs only on its windows that hold the answer (the ones a student distils
    # from): fewer windows, never a higher logit, and the same logits where a pair has that one window
    spans = [(e.answers[0]["answer_start"], e.answers[0]["answer_start"] + len(e.answers[0]["text"]))
             for e in examples]
    labelled = encode_windows(tokenizer, questions, contexts, 64, 16, spans)
    ran: list[int] = []
    only = teacher_span_targets(net, tokenizer, questions, contexts, labelled, 64, 16, progress=ran.append,
                                answers=spans)
    full = teacher_span_targets(net, tokenizer, questions, contexts, labelled, 64, 16)
    holds = labelled.starts > 0
    assert sum(ran) == holds.sum() < len(labelled)
    single = np.bincount(labelled.example, minlength=len(examples)) == 1
    checked = 0
    for w in range(len(labelled)):
        assert (only[w] <= full[w] + 1e-4).all()
        if holds[w] and single[labelled.example[w]]:
            assert np.allclose(only[w], full[w], atol=1e-4)
            checked += 1
    assert checked
    objective = DistillSpanObjective(alpha=1.0, temperature=2.0)
    logits = torch.from_numpy(np.stack([own[0], own[0]]))
    hard = torch.tensor([[1, 1], [1, 1]])
    same, _, _ = objective.batch_loss(lambda _: logits, None, (hard, logits.clone(), torch.ones(2)), training=True)
    other, _, _ = objective.batch_loss(lambda _: logits.flip(1), None, (hard, logits.clone(), torch.ones(2)), True)
    assert float(same) < 1e-5 < float(other)
    # a student from the packaged body, taught by the trained reader alone (alpha 1: no gold spans), answers as the
    # teacher does far more often than the untrained reader did
    teacher = [a["answer"] for a in result.reader.answer(questions, contexts)]
    student = QAReader(backbone="minilm", teacher=str(result.out), distill_alpha=1.0, max_length=128, stride=32,
                       epochs=6, batch_size=10, lr=3e-4, head_lr=3e-3, body_dropout=None).fit(examples)
    agree = sum(a["answer"] == t for a, t in zip(student.answer(questions, contexts), teacher, strict=True))
    agreed_before = sum(r["prediction"] == t for r, t in zip(before["per_question"], teacher, strict=True))
    print("agree with the teacher: before", agreed_before, "after", agree)
    assert agree >= agreed_before + 4


@pytest.mark.slow
def test_init_weight_averages_the_trained_weights_with_the_starting_readers(trained):
    from safetensors.torch import load_file

    from transferlab.strategies.qa_reader import QAReader

    _, examples, _, result = trained
    start = load_file(str(result.out / "model.safetensors"))
    params = {"init": str(result.out), "epochs": 1, "batch_size": 10, "max_length": 128, "stride": 32,
              "lr": 1e-3, "head_lr": 1e-2}
    alone = QAReader(**params).fit(examples[:10]).net_.state_dict()
    half = QAReader(**params, init_weight=0.5).fit(examples[:10]).net_.state_dict()
    moved = [k for k in start if not (alone[k] == start[k]).all()]
    assert moved  # the training moved some weights; the average sits halfway for every one of them
    for k in start:
        assert np.allclose(half[k].numpy(), (start[k].numpy() + alone[k].numpy()) / 2, atol=1e-6), k
    with pytest.raises(UserError, match="init_weight"):
        QAReader(init_weight=1.0).fit(examples)
    with pytest.raises(UserError, match="not a saved reader"):  # checked before any body is loaded
        QAReader(teacher=str(result.out / "no_such_reader")).fit(examples)


@pytest.mark.slow
def test_a_teacher_trained_in_the_run_learns_from_a_share_and_a_resumed_run_reuses_its_logits(trained, tmp_path,
                                                                                              capsys, monkeypatch):
    """``teacher`` naming an encoder trains that reader on ``teacher_fraction`` of the questions first and distils
    it on the others; with checkpoints its logits are kept, so resuming a finished run trains no teacher and ends
    with the same weights."""
    from transferlab.strategies.qa_reader import QAReader

    _, examples, _, _ = trained
    params = {"backbone": "minilm", "teacher": "minilm", "teacher_fraction": 0.5, "epochs": 1, "batch_size": 4,
              "max_length": 64, "stride": 16, "checkpoint_dir": str(tmp_path / "ck")}
    first = QAReader(**params).fit(examples[:6])
    assert first.train_windows_["teacher"] == "minilm" and first.train_windows_["teacher_questions"] == 3
    assert first.train_windows_["distilled_questions"] == 3  # cross-fitted: logits on the questions it did not see
    assert (tmp_path / "ck" / "teacher_logits.npz").exists()
    capsys.readouterr()
    monkeypatch.setenv("TRANSFERLAB_QUIET", "0")  # the log says where the logits came from
    again = QAReader(**params, resume=True).fit(examples[:6])
    assert "teacher's logits from" in capsys.readouterr().err
    assert again.train_windows_["teacher_questions"] == 3
    a, b = first.net_.state_dict(), again.net_.state_dict()
    assert all((a[k] == b[k]).all() for k in a)
    with pytest.raises(UserError, match="teacher_fraction"):
        QAReader(teacher="minilm", teacher_fraction=0.0).fit(examples)
    with pytest.raises(UserError, match="nor a text encoder"):
        QAReader(teacher="glove").fit(examples)
