"""The binary csPCa label from a clinical score column (`--label-rule`).

A rule is `SCORE>=N` (also `>`, `<=`, `<`, `==`) over one column of the manifest (or of the
PI-CAI marksheet), or the name `picai`: PI-CAI's definition of clinically significant cancer,
ISUP grade >= 2. The score names find their column through aliases (case-insensitive):

    pirads>=4    PI-RADS 4-5 is csPCa-suspicious (columns pirads, pi_rads, case_pirads)
    likert>=4    Likert 4-5 (column likert)
    isup>=2      ISUP grade group 2-5 (columns isup, case_isup, isup_grade)
    picai        = isup>=2, the PI-CAI challenge's definition

Any other column name works as well (`gleason_sum>=7`). An empty cell gives an unknown label;
a cell that is not a number is a problem of that case.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

SCORE_ALIASES = {"pirads": ("pirads", "pi_rads", "pi-rads", "case_pirads"), "likert": ("likert",),
                 "isup": ("isup", "case_isup", "isup_grade")}
NAMED_RULES = {"picai": "isup>=2"}
EXAMPLES = ("pirads>=4", "likert>=4", "isup>=2", "picai")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
_RULE = re.compile(r"^\s*(?P<score>[A-Za-z_][\w\-]*)\s*(?P<op>>=|<=|==|>|<)\s*(?P<n>-?\d+(\.\d+)?)\s*$")


def rules_hint() -> str:
    return f"give --label-rule, one of {', '.join(EXAMPLES)} (or COLUMN>=N)"


@dataclass(frozen=True)
class LabelRule:
    text: str          # as given, e.g. "picai"
    score: str         # score name, e.g. "isup"
    op: str
    threshold: float

    def describe(self, column: str | None = None) -> str:
        rule = f"{self.score}{self.op}{self.threshold:g}"
        where = f" from column {column!r}" if column else ""
        named = " (PI-CAI: csPCa = ISUP >= 2)" if self.text == "picai" else ""
        return f"csPCa label = {rule}{where}{named}"

    def column(self, header: list[str]) -> str | None:
        """The header's column for this rule's score (aliases, case-insensitive), or None."""
        lower = {h.strip().lower(): h for h in header}
        for name in SCORE_ALIASES.get(self.score.lower(), (self.score,)):
            if name.lower() in lower:
                return lower[name.lower()]
        return None

    def label(self, text: str | None) -> int | None:
        """0/1 for a score cell, None for an empty one; ValueError for a cell that is no number."""
        text = (text or "").strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{self.score} must be a number for --label-rule {self.text}, got {text!r}") from None
        return int(_OPS[self.op](value, self.threshold))


def parse_rule(text: str | None) -> LabelRule | None:
    """`pirads>=4` / `picai` -> LabelRule; ValueError naming the rules to choose from."""
    if text is None:
        return None
    match = _RULE.match(NAMED_RULES.get(text.strip().lower(), text))
    if not match:
        raise ValueError(f"--label-rule {text!r} is not a rule; use one of {', '.join(EXAMPLES)} or COLUMN>=N")
    return LabelRule(text.strip(), match["score"], match["op"], float(match["n"]))


def check_binary(values: list[str], column: str, where: str) -> None:
    """ValueError when a label column holds numbers other than 0 and 1 (a score, not a label)."""
    numbers = set()
    for v in values:
        try:
            numbers.add(float(v))
        except ValueError:
            return                         # words: each case reports its own bad value
    if numbers - {0.0, 1.0}:
        shown = sorted(f"{n:g}" for n in numbers)
        raise ValueError(f"{where}: label column {column!r} holds {shown[:10]}, not a binary csPCa label (0/1); "
                         f"{rules_hint()}")
