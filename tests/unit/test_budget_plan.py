"""The sentiment budget's planner, on throughputs recorded on the two machine kinds: the plan
fits the budget, a faster machine never gets less work, and the first-start arithmetic and the
estimate `make models` prints come from one set of figures."""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from training import budget
from training.budget import Plan, Throughput, Workload

ROOT = Path(__file__).resolve().parents[2]

# The default recipe's stages and the data they read (SST-2 GLUE phrases, the 6,920 sentences,
# dev; ~36k vocabulary words for the teacher's word vectors), counted in whitespace words.
RECIPE = Plan(teacher_epochs=2.0, phrase_share=1.0, copies=6, epochs=6)
WORK = Workload(
    phrases=67349,
    phrase_words=633724,
    sentences=6920,
    sentence_words=133555,
    dev_rows=872,
    dev_words=17046,
    vocabulary=36000,
)
# Rates derived from the stage timings of the default recipe on a fresh clone (issue #31):
# AMD EPYC: 434 teacher steps in 2.65 min, 4.31 min of labels, ~80 s a student epoch;
# Intel Xeon with AMX: ~1.7 min of labels and ~50 s a student epoch.
EPYC = Throughput(teacher_steps_per_s=2.73, label_words_per_s=6870, student_words_per_s=18150)
INTEL = Throughput(teacher_steps_per_s=5.0, label_words_per_s=17400, student_words_per_s=29000)
# AMD EPYC without AVX-512 (Zen 3, fp32), measured by `--profile budget` runs (seed 13).
NO_AVX512 = Throughput(teacher_steps_per_s=1.19, label_words_per_s=1859, student_words_per_s=10694)
SPENT = 40.0  # seconds of loading and measuring before the plan


def scaled(rate: Throughput, factor: float) -> Throughput:
    return Throughput(*(value * factor for value in asdict(rate).values()))


def no_less_work(more: Plan, less: Plan) -> bool:
    return all(a >= b for a, b in zip(more.work(), less.work(), strict=True))


def test_the_cost_model_fed_the_epyc_rates_predicts_its_recorded_stage_minutes() -> None:
    minutes = {k: v / 60 for k, v in budget.stage_seconds(RECIPE, WORK, EPYC).items()}
    assert minutes["teacher"] == pytest.approx(2.65, rel=0.05)
    assert minutes["labels"] == pytest.approx(4.31, rel=0.1)
    assert minutes["student"] == pytest.approx(6 * 80 / 60, rel=0.1)


def test_an_ample_budget_keeps_the_recipe_and_says_so() -> None:
    choice = budget.plan(RECIPE, WORK, EPYC, 60 * 60, SPENT)
    assert choice.plan == RECIPE and choice.fits
    assert len(choice.decisions) == 4
    assert all("as the recipe" in line for line in choice.decisions[:3])


def test_the_budget_profile_on_the_epyc_cuts_the_recipe_to_fit() -> None:
    seconds = budget.SENTIMENT_BUDGET_MINUTES * 60
    choice = budget.plan(RECIPE, WORK, EPYC, seconds, SPENT)
    assert choice.fits and SPENT + sum(choice.predicted.values()) <= seconds
    assert choice.plan != RECIPE and no_less_work(RECIPE, choice.plan)
    assert choice.plan.teacher_epochs > 0 and choice.plan.epochs >= 1
    assert any("cut to fit" in line for line in choice.decisions)
    assert f"of {budget.SENTIMENT_BUDGET_MINUTES:.1f} min" in choice.decisions[-1]


@pytest.mark.parametrize("rate", [EPYC, INTEL], ids=["epyc", "intel"])
@pytest.mark.parametrize("minutes", [3, 5, 8, 10, 14, 20])
def test_the_plan_is_the_most_work_of_the_ladder_that_fits(rate: Throughput, minutes: int) -> None:
    choice = budget.plan(RECIPE, WORK, rate, minutes * 60, SPENT)
    total = SPENT + sum(choice.predicted.values())
    assert total <= minutes * 60
    plans = budget.ladder(RECIPE)
    rung = choice.rung()
    before = plans[plans.index(rung) - 1] if rung != RECIPE else None
    if before is not None:  # the next bigger plan would not have fitted
        assert SPENT + sum(budget.stage_seconds(before, WORK, rate).values()) > minutes * 60
    if choice.plan.epochs < RECIPE.epochs:  # nor would one more student epoch
        more = replace(choice.plan, epochs=choice.plan.epochs + 1)
        assert SPENT + sum(budget.stage_seconds(more, WORK, rate).values()) > minutes * 60


@pytest.mark.parametrize("minutes", [4, 6, 8, 11, 16])
def test_a_faster_machine_gets_at_least_as_much_work(minutes: int) -> None:
    """Of the ladder's rungs: the epochs given back afterwards may favour a slower machine
    that lost its teacher."""
    rungs = [
        budget.plan(RECIPE, WORK, scaled(EPYC, f), minutes * 60, SPENT).rung()
        for f in (0.5, 0.8, 1.0, 1.3, 1.7, 2.5, 4.0)
    ]
    for slower, faster in itertools.pairwise(rungs):
        assert no_less_work(faster, slower)
    intel = budget.plan(RECIPE, WORK, INTEL, minutes * 60, SPENT).rung()
    epyc = budget.plan(RECIPE, WORK, EPYC, minutes * 60, SPENT).rung()
    assert no_less_work(intel, epyc)


def test_the_minutes_a_dropped_teacher_leaves_go_back_to_the_student() -> None:
    """The rates measured on an AMD EPYC without AVX-512 (fp32; docs/first-start.md): no
    teacher fits in 8 minutes, and the student gets the epochs the rung before had cut."""
    choice = budget.plan(RECIPE, WORK, NO_AVX512, budget.SENTIMENT_BUDGET_MINUTES * 60, SPENT)
    assert choice.rung() == Plan(0.0, 0.0, 0, 3)
    assert choice.plan.teacher_epochs == 0 and choice.plan.epochs > 3
    assert choice.given_back == choice.plan.epochs - 3
    assert choice.fits and SPENT + sum(choice.predicted.values()) <= 8 * 60
    student = next(line for line in choice.decisions if line.startswith("student"))
    assert f"{choice.given_back} given back" in student


def test_the_ladder_only_cuts_and_never_exceeds_the_recipe() -> None:
    for recipe in (RECIPE, Plan(1.0, 0.5, 3, 10), Plan(0.0, 0.0, 0, 4)):
        plans = budget.ladder(recipe)
        assert plans[0] == recipe and len(set(plans)) == len(plans)
        for bigger, smaller in itertools.pairwise(plans):
            assert no_less_work(bigger, smaller) and bigger != smaller
        assert plans[-1] == Plan(0.0, 0.0, 0, 1)  # no teacher, one epoch
        for plan in plans:  # a plan without a teacher has nothing for it to label
            assert plan.teacher_epochs > 0 or (plan.copies, plan.phrase_share) == (0, 0.0)


def test_a_budget_too_small_for_any_plan_gives_the_smallest_and_says_it_runs_over() -> None:
    choice = budget.plan(RECIPE, WORK, EPYC, 60, SPENT)
    assert not choice.fits and choice.plan == budget.ladder(RECIPE)[-1]
    assert "runs over" in choice.decisions[-1]
    assert choice.decisions[0].startswith("teacher: none")


def test_a_recorded_plan_reads_back_from_metrics_json(tmp_path: Path) -> None:
    choice = budget.plan(RECIPE, WORK, EPYC, 8 * 60, SPENT)
    saved = tmp_path / "metrics.json"
    saved.write_text(json.dumps({"dev_accuracy": 0.85, "budget": choice.record(EPYC)}))
    assert budget.load_plan(json.loads(saved.read_text())) == choice.plan
    assert budget.load_plan(asdict(choice.plan)) == choice.plan


def test_the_first_start_arithmetic_adds_up_to_its_target() -> None:
    parts = (
        budget.INSTALL_MINUTES,
        budget.SENTIMENT_BUDGET_MINUTES,
        budget.LM_MINUTES,
        budget.SERVE_MINUTES,
    )
    assert sum(parts) == budget.FIRST_START_MINUTES and budget.SENTIMENT_BUDGET_MINUTES > 0


def test_the_trainers_take_their_budgets_from_the_one_home() -> None:
    from training import train_lm, train_sentiment

    assert train_lm.parse_options([]).minutes == budget.LM_MINUTES
    assert train_lm.parse_options(["--profile", "budget"]).minutes == budget.LM_MINUTES
    sentiment = train_sentiment.parse_options(["--profile", "budget"])
    assert sentiment.minutes == budget.SENTIMENT_BUDGET_MINUTES
    assert train_sentiment.parse_options([]).minutes is None  # the default stays the recipe


def test_the_estimate_names_what_is_missing() -> None:
    total = budget.SENTIMENT_BUDGET_MINUTES + budget.LM_MINUTES
    line = budget.estimate("budget", ["sentiment", "lm"])
    assert line.startswith(f"training both models: about {round(total)} minutes")
    assert budget.estimate("default", ["lm"]).startswith(
        f"training lm: about {round(budget.LM_MINUTES)} minutes"
    )
    assert budget.estimate("default", []) == ""


def test_make_models_prints_the_estimate_for_untrained_models_only(tmp_path: Path) -> None:
    def printed(profile: str) -> str:
        command = ["make", "-s", "train-estimate", f"ARTIFACTS={tmp_path}", f"PROFILE={profile}"]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout

    assert printed("budget").strip() == budget.estimate("budget", ["sentiment", "lm"])
    (tmp_path / "sentiment").mkdir()
    (tmp_path / "sentiment" / "weights.pt").write_bytes(b"")
    assert printed("default").strip() == budget.estimate("default", ["lm"])
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "weights.pt").write_bytes(b"")
    assert printed("default") == ""


def test_a_plan_replaces_only_the_levers() -> None:
    from training.train_sentiment import TrainOptions, _with_plan

    options = _with_plan(TrainOptions(), Plan(1.0, 0.25, 2, 4))
    assert (options.teacher_epochs, options.teacher_phrase_share) == (1.0, 0.25)
    assert (options.augment_copies, options.epochs) == (2, 4)
    assert (
        replace(options, teacher_epochs=2.0, teacher_phrase_share=1.0, augment_copies=6, epochs=6)
        == TrainOptions()
    )
