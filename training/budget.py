"""Wall-clock budgets for the first start, and how the sentiment trainer spends one.

    python -m training.budget estimate --profile default sentiment lm   # what `make models` prints
    python -m training.train_sentiment --profile budget --out runs/s    # plan, then train (8 min)
    python -m training.train_sentiment --plan runs/s/metrics.json ...   # repeat that plan exactly

The sentiment recipe is fixed in stages (teacher epochs, teacher-labelled rows, student epochs),
so its minutes follow the CPU: 15.2 on the AMD EPYC, 8.4 on the Intel Xeon with AMX (issue #31).
With ``--minutes M`` the trainer instead measures its stages' throughput in the first seconds
(`training.throughput`) and `plan` picks the most work of a fixed ladder that is predicted to
fit: a pure function of (recipe, workload sizes, throughputs, minutes), so it is tested on
recorded throughputs and a faster machine never gets less work. The ladder's order of cuts is a
first guess, not a measured one (docs/first-start.md lists what to measure).

Plain Python, no third-party imports: the Makefile prints the estimate before ``.venv`` exists.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

# The first-start arithmetic (minutes), one home for each figure (docs/first-start.md):
FIRST_START_MINUTES = 22.0  # issue #31: a fresh clone's `make serve` reaches READY in this
INSTALL_MINUTES = 1.5  # `make setup` on a fresh 2-core machine (issue #31, AMD EPYC)
SERVE_MINUTES = 0.5  # both archives + TorchServe to READY: an allowance, not yet measured
LM_MINUTES = 12.0  # the LM's own budget: training/train_lm.py's default --minutes
SENTIMENT_BUDGET_MINUTES = FIRST_START_MINUTES - INSTALL_MINUTES - SERVE_MINUTES - LM_MINUTES
# The fixed default sentiment recipe, measured on a fresh clone on the slower kind (AMD EPYC,
# 2026-12-07, ../shared/docs/cpu-performance-notes.md; 8.4 on an Intel Xeon with AMX).
SENTIMENT_RECIPE_MINUTES = 15.2
# PROFILE=fast (3 copies): "about a minute shorter" (docs/models/sentiment.md)
FAST_PROFILE_SAVING_MINUTES = 1.0
TINY_MINUTES = 0.5  # the tiny profiles: seconds of training plus start-up

RESERVE_SECONDS = 10.0  # after the planned stages: augmentation, saving the artifact
LABEL_ROW_TOKENS = 2  # the teacher's [CLS] and [SEP]: labelling cost per row beyond its words
OVERRUN_SHARE = 0.1  # the student stops early (after an epoch) only past the budget by this

# The plan's levers, cut in this order (each to the given share of the recipe's value) until
# the prediction fits. Perturbed copies go first (PROFILE=fast's 3 copies cost a few tenths of
# a point), then a student epoch, then half the teacher's epochs (teacher dev 86.7% after one
# epoch, 87.5% after two), then the labelled phrases (fragments of the sentences the teacher
# was tuned on: little new signal, cpu-performance-notes.md), then the rest in turn; without a
# teacher last. A first guess to be measured (docs/first-start.md, "To measure").
CUTS: tuple[tuple[str, float], ...] = (
    ("copies", 5 / 6),
    ("copies", 4 / 6),
    ("copies", 3 / 6),
    ("epochs", 5 / 6),
    ("teacher_epochs", 0.75),
    ("teacher_epochs", 0.5),
    ("phrase_share", 0.5),
    ("copies", 2 / 6),
    ("epochs", 4 / 6),
    ("phrase_share", 0.25),
    ("phrase_share", 0.0),
    ("copies", 1 / 6),
    ("epochs", 3 / 6),
    ("teacher_epochs", 0.0),
    ("epochs", 2 / 6),
    ("epochs", 1 / 6),
    ("epochs", 0.0),  # at least one epoch is always trained
)


@dataclass(frozen=True)
class Plan:
    """How much of each stage a run does: the levers a budget moves."""

    teacher_epochs: float  # 0: no teacher (no labels, no copies)
    phrase_share: float  # share of the training phrases the teacher labels (rest: gold only)
    copies: int  # perturbed copies of each sentence, teacher-labelled
    epochs: int  # student epochs

    def work(self) -> tuple[float, float, int, int]:
        return (self.teacher_epochs, self.phrase_share, self.copies, self.epochs)


@dataclass(frozen=True)
class Workload:
    """What the stages process, counted in words (whitespace-split, as PTB text is)."""

    phrases: int
    phrase_words: int
    sentences: int
    sentence_words: int
    dev_rows: int
    dev_words: int
    vocabulary: int = 0  # words the teacher reads one by one for its word vectors (0: none)
    teacher_batch: int = 32


@dataclass(frozen=True)
class Throughput:
    """Rates measured on this machine, now (`training.throughput.measure`)."""

    teacher_steps_per_s: float  # fine-tuning steps of ``teacher_batch`` sentences
    label_words_per_s: float  # teacher inference, counting LABEL_ROW_TOKENS more per row
    student_words_per_s: float  # student training steps


@dataclass
class Choice:
    """The chosen plan, its predicted seconds per stage, and one line per decision."""

    plan: Plan
    recipe: Plan
    predicted: dict[str, float]
    budget_seconds: float
    spent_seconds: float
    fits: bool
    decisions: list[str]
    given_back: int = 0  # student epochs added back after the rung (`give_back`)

    def rung(self) -> Plan:
        """The ladder's plan this choice started from."""
        return replace(self.plan, epochs=self.plan.epochs - self.given_back)

    def record(self, throughput: Throughput) -> dict[str, Any]:
        """What metrics.json keeps (``--plan`` reads ``plan`` back)."""
        return {
            "minutes": round(self.budget_seconds / 60, 3),
            "plan": asdict(self.plan),
            "recipe": asdict(self.recipe),
            "throughput": {k: round(v, 2) for k, v in asdict(throughput).items()},
            "spent_before_plan_minutes": round(self.spent_seconds / 60, 3),
            "predicted_minutes": {k: round(v / 60, 3) for k, v in self.predicted.items()},
            "fits": self.fits,
            "decisions": self.decisions,
        }


def load_plan(saved: dict[str, Any]) -> Plan:
    """The plan in a run's metrics.json (under ``budget``), or a bare plan mapping."""
    found = saved.get("budget", saved)
    found = found.get("plan", found)
    return Plan(
        teacher_epochs=float(found["teacher_epochs"]),
        phrase_share=float(found["phrase_share"]),
        copies=int(found["copies"]),
        epochs=int(found["epochs"]),
    )


def teacher_steps(plan: Plan, work: Workload) -> int:
    """The fine-tuning steps `training.teacher.fine_tune` takes for this plan."""
    if plan.teacher_epochs <= 0:
        return 0
    return max(1, round(math.ceil(work.sentences / work.teacher_batch) * plan.teacher_epochs))


def labelled_phrases(plan: Plan, work: Workload) -> int:
    return round(work.phrases * plan.phrase_share) if plan.teacher_epochs > 0 else 0


def stage_seconds(plan: Plan, work: Workload, rate: Throughput) -> dict[str, float]:
    """Predicted seconds of each stage that a plan still has to run (after the probes)."""
    if plan.teacher_epochs <= 0:
        teacher = labels = 0.0
        copies = 0
    else:
        copies = plan.copies
        teacher = teacher_steps(plan, work) / rate.teacher_steps_per_s
        share = labelled_phrases(plan, work) / max(work.phrases, 1)
        words = (
            share * (work.phrase_words + LABEL_ROW_TOKENS * work.phrases)
            + copies * (work.sentence_words + LABEL_ROW_TOKENS * work.sentences)
            + work.dev_words
            + LABEL_ROW_TOKENS * work.dev_rows
            + (1 + LABEL_ROW_TOKENS) * work.vocabulary
        )
        labels = words / rate.label_words_per_s
    # Copies are at most as long as their sentence (some are cut to n-grams): an upper bound.
    epoch_words = work.phrase_words + copies * work.sentence_words + work.dev_words
    student = plan.epochs * epoch_words / rate.student_words_per_s
    return {"teacher": teacher, "labels": labels, "student": student, "reserve": RESERVE_SECONDS}


def ladder(recipe: Plan) -> list[Plan]:
    """The recipe, then each distinct plan that CUTS makes of it, most work first. Every plan
    does no more of any stage than the one before it."""
    plans = [recipe]
    for lever, share in CUTS:
        current = plans[-1]
        base = getattr(recipe, lever)
        if lever == "phrase_share":
            value: float = min(current.phrase_share, share)
        elif lever == "teacher_epochs":
            value = min(current.teacher_epochs, round(base * share, 3))
        else:  # whole numbers: copies may reach 0, epochs stay at least 1
            value = min(getattr(current, lever), math.ceil(base * share))
            value = max(value, 1) if lever == "epochs" else value
        cut = replace(current, **{lever: value})
        if cut.teacher_epochs <= 0:
            cut = replace(cut, teacher_epochs=0.0, phrase_share=0.0, copies=0)
        if cut != current:
            plans.append(cut)
    return plans


def ends_within(predicted: dict[str, float], spent_seconds: float, budget_seconds: float) -> bool:
    """Whether a plan whose stages are predicted to take ``predicted`` seconds, started after
    ``spent_seconds``, ends within the budget: the one test the ladder, the choice's ``fits``
    and `give_back` apply."""
    return spent_seconds + sum(predicted.values()) <= budget_seconds


def plan(
    recipe: Plan, work: Workload, rate: Throughput, budget_seconds: float, spent_seconds: float
) -> Choice:
    """The first plan of the ladder predicted to end within the budget (else the smallest),
    then the minutes that rung leaves given back to the student (`give_back`)."""
    chosen, predicted = recipe, {}
    for candidate in ladder(recipe):
        chosen, predicted = candidate, stage_seconds(candidate, work, rate)
        if ends_within(predicted, spent_seconds, budget_seconds):
            break
    fits = ends_within(predicted, spent_seconds, budget_seconds)
    choice = Choice(chosen, recipe, predicted, budget_seconds, spent_seconds, fits, [])
    if fits:
        give_back(choice, work, rate)
    choice.decisions = decisions(choice, work, rate)
    return choice


def give_back(choice: Choice, work: Workload, rate: Throughput) -> None:
    """Student epochs added, up to the recipe's, while the prediction still fits. The ladder
    only cuts, so a rung that drops a costly stage (the teacher, on a slow CPU) keeps the epochs
    of the rung before it: measured on an AMD EPYC without AVX-512, that left more than half of
    an 8-minute budget unused (docs/first-start.md, "Measured")."""
    while choice.plan.epochs < choice.recipe.epochs:
        more = replace(choice.plan, epochs=choice.plan.epochs + 1)
        predicted = stage_seconds(more, work, rate)
        if not ends_within(predicted, choice.spent_seconds, choice.budget_seconds):
            return
        choice.plan, choice.predicted = more, predicted
        choice.given_back += 1


def decisions(choice: Choice, work: Workload, rate: Throughput) -> list[str]:
    """One line per lever: what was chosen, the recipe's value, its predicted cost, and why."""
    chosen, recipe, seconds = choice.plan, choice.recipe, choice.predicted

    def why(lever: str) -> str:
        if getattr(chosen, lever) == getattr(recipe, lever):
            return "as the recipe"
        return f"recipe {getattr(recipe, lever):g}, cut to fit"

    total = choice.spent_seconds + sum(seconds.values())
    returned = f", {choice.given_back} given back from the time left" if choice.given_back else ""
    if chosen.teacher_epochs <= 0:
        teacher = [f"teacher: none ({why('teacher_epochs')}): no labels, no perturbed copies"]
    else:
        teacher = [
            f"teacher fine-tune: epochs {chosen.teacher_epochs:g} ({teacher_steps(chosen, work)} "
            f"steps at {rate.teacher_steps_per_s:.2f}/s, {seconds['teacher'] / 60:.1f} min; "
            f"{why('teacher_epochs')})",
            f"teacher labels: {labelled_phrases(chosen, work)} of {work.phrases} phrases "
            f"({why('phrase_share')}) and {chosen.copies} perturbed copies of each of "
            f"{work.sentences} sentences ({why('copies')}): {seconds['labels'] / 60:.1f} min at "
            f"{rate.label_words_per_s:.0f} words/s",
        ]
    return [
        *teacher,
        f"student: epochs {chosen.epochs} ({why('epochs')}{returned}): "
        f"{seconds['student'] / 60:.1f} min "
        f"at {rate.student_words_per_s:.0f} words/s",
        f"predicted {total / 60:.1f} of {choice.budget_seconds / 60:.1f} min "
        f"({choice.spent_seconds / 60:.1f} spent on loading and measuring, "
        f"{RESERVE_SECONDS:.0f} s kept for saving; cuts in the order of training.budget.CUTS)"
        + ("" if choice.fits else "; even the smallest plan does not fit: it runs over"),
    ]


# What `make models` prints before training: minutes per model and profile, from the figures
# above. A profile missing here is a trainer's own (no estimate: said so).
ESTIMATES: dict[str, dict[str, tuple[float, str]]] = {
    "sentiment": {
        "default": (SENTIMENT_RECIPE_MINUTES, "fixed recipe, as on an AMD EPYC"),
        "fast": (
            SENTIMENT_RECIPE_MINUTES - FAST_PROFILE_SAVING_MINUTES,
            "fixed recipe, as on an AMD EPYC",
        ),
        "budget": (SENTIMENT_BUDGET_MINUTES, "its budget"),
        "tiny": (TINY_MINUTES, "tiny"),
    },
    "lm": {
        "default": (LM_MINUTES, "its budget"),
        "fast": (LM_MINUTES, "its budget"),
        "budget": (LM_MINUTES, "its budget"),
        "tiny": (TINY_MINUTES, "tiny"),
    },
}


def estimate(profile: str, missing: list[str]) -> str:
    """One line: the minutes of training still to come ("" when nothing is missing)."""
    if not missing:
        return ""
    parts, total = [], 0.0
    for name in missing:
        minutes, how = ESTIMATES.get(name, {}).get(profile, (math.nan, "no estimate"))
        total += minutes
        parts.append(f"{name} {minutes:g} min, {how}" if minutes == minutes else f"{name} ?")
    subject = "both models" if len(missing) == 2 else ", ".join(missing)
    if total != total:
        about = "minutes unknown"
    else:
        about = "about a minute" if round(total) <= 1 else f"about {round(total)} minutes"
    return f"training {subject}: {about} ({'; '.join(parts)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    say = commands.add_parser("estimate", help="minutes of training for the models named")
    say.add_argument("--profile", default="default")
    say.add_argument("missing", nargs="*", help="models whose artifacts are missing")
    args = parser.parse_args(argv)
    line = estimate(args.profile, args.missing)
    if line:
        print(line)


if __name__ == "__main__":
    main()
