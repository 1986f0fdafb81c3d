"""The ``dga`` section: the generated-domain detector of resolver/stages/dga.py.

``bench/dga_eval.py`` replays DGA families implemented from their published descriptions and a
benign day against these values; ``bench/dga_results.md`` records the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal


def _bad(message: str, hint: str) -> ValueError:
    # The config loader splits "message|hint" (see resolver/config/loader.py).
    return ValueError(f"{message}|{hint}")


@dataclass(frozen=True, slots=True)
class DgaConfig:
    """Machines that look up generated domains (DGA malware), and what is done about them."""

    # block: once a machine is judged infected, its lookups of names of the same shape are
    # answered as blocked (blocking.mode, EDE 15, reason and category "dga") and the machine is
    # named on the page; detect: only named (logged), nothing blocked; off: the stage is out.
    mode: Literal["block", "detect", "off"] = "block"
    # Evidence: each NXDOMAIN answer to a registered domain (the name itself, or www. under
    # it) that none of the commune's machines resolved counts 1, or ``random_weight`` when its
    # label is likelier drawn at random than written as real names are (the character model).
    random_weight: float = 3.0
    # A label this short is never judged random: three or four letters are too few to tell.
    min_random_chars: int = 7
    # Evidence fades by half every ``half_life`` seconds: a bot's burst of lookups adds up,
    # the same count spread over a day (a typo now and then) does not.
    half_life: float = 300.0
    # The machine is named once its evidence reaches ``score``, over at least ``domains``
    # distinct never-resolved registered domains asked within ``window`` seconds: 12 random-
    # looking ones, or 18 word-like ones (dictionary families).
    score: float = 18.0
    domains: int = 12
    window: float = 900.0
    # A slow bot (a try a minute) never makes a burst: it is named too once ``slow_domains``
    # never-resolved registered domains, most of them random-looking, came within
    # ``slow_window`` seconds. (A slow dictionary family is not caught this way.)
    slow_domains: int = 48
    slow_window: float = 21600.0
    # The judgement ends this long after the machine's last lookup of a name of the shape.
    hold: float = 3600.0
    # Machines followed at once (least recently seen forgotten first): ~1 KB each.
    max_clients: int = 4096
    # Registered domains remembered as resolved, with the machine that resolved them last.
    max_domains: int = 65536
    # Judgements kept for the shell to log (drained each second).
    max_detections: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) and value <= 0:
                raise _bad(f"{f.name} is {value}", "give a positive value")
        if self.window < self.half_life:
            raise _bad("window is shorter than half_life", "make window >= half_life")
        if self.slow_domains > 64:
            raise _bad(f"slow_domains is {self.slow_domains}", "use 64 or fewer (remembered)")
