"""The page's words, in French (default) and English.

Texts are constants; functions build the sentences that depend on counts so plurals stay right.
Nothing here escapes HTML: the caller escapes every value when it renders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

from dashboard.weather import Weather

Lang = Literal["fr", "en"]
LANGS: Final[tuple[Lang, ...]] = ("fr", "en")


def pick_lang(value: str | None, default: Lang) -> Lang:
    """``value`` if it names a supported language, else ``default``."""
    for lang in LANGS:
        if value == lang:
            return lang
    return default


_TEXTS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "fr": MappingProxyType(
            {
                "title": "Parafoudre : la météo des menaces",
                "today": "Aujourd'hui",
                "since_midnight": "depuis minuit ({tz})",
                "weather.sunny": "Grand soleil",
                "weather.cloudy": "Quelques nuages",
                "weather.rain": "Pluie",
                "weather.storm": "Orage",
                "weather.tornado": "Tornade",
                "counts": "Blocages d'aujourd'hui par catégorie",
                "counts_note": (
                    "Trois familles sont comptées séparément : les listes de menaces "
                    "(flux de renseignement), les fuites de données par le DNS, et les listes "
                    "propres à la mairie. La météo compte les trois."
                ),
                "kind.feeds": "Listes de menaces",
                "kind.exfiltration": "Fuites de données (DNS)",
                "kind.lists": "Listes de la mairie",
                "no_blocks": "Aucun blocage.",
                "blocks": "Blocages d'aujourd'hui",
                "col.time": "Heure",
                "col.client": "Poste",
                "col.name": "Nom demandé",
                "col.category": "Catégorie",
                "col.source": "Liste ou signal",
                "col.count": "Nombre",
                "col.day": "Jour",
                "page": "Page {page} sur {pages} ({total} blocages)",
                "times": "×{count}",
                "times_title": "{count} requêtes identiques, comptées à partir de cette heure",
                "prev": "← Plus récents",
                "next": "Plus anciens →",
                "history7": "Les 7 derniers jours",
                "history30": "Les 30 derniers jours",
                "top_names": "Noms les plus bloqués aujourd'hui",
                "top_clients": "Postes les plus concernés aujourd'hui",
                "feeds": "État des listes de menaces",
                "feeds_none": "Aucune liste de menaces configurée.",
                "col.feed": "Liste",
                "col.entries": "Noms",
                "col.updated": "Mise à jour",
                "col.status": "État",
                "feed.ok": "à jour",
                "feed.stale": "ancienne",
                "feed.never": "jamais téléchargée",
                "feed.error": "erreur : {error}",
                "ago": "il y a {duration}",
                "thresholds": "Comment lire la météo",
                "thresholds_intro": (
                    "La météo compte les blocages depuis minuit. Repère : le programme de la "
                    "Loire a neutralisé 422 000 attaques en un an dans 92 communes, environ 12 "
                    "par jour et par commune, avec un boîtier qui filtre bien plus que le DNS. "
                    "Une journée ordinaire ici reste donc nuageuse, au plus une petite pluie."
                ),
                "threshold.sunny": "aucun blocage",
                "threshold.range": "de {low} à {high} blocages",
                "threshold.from": "{low} blocages ou plus",
                "losses": (
                    "Attention : {dropped} blocages n'ont pas pu être enregistrés (file pleine) "
                    "et {failed} ont été perdus à l'écriture ; les chiffres sont sous-estimés."
                ),
                "db_error": (
                    "Le journal des blocages est illisible pour l'instant ; les chiffres "
                    "reviendront dès que le résolveur l'aura créé."
                ),
                "version": "Parafoudre {version}, en service depuis {uptime}",
                "updated": "Mis à jour à {time}",
                "language": "English",
                "highlight_none": "Aucun poste ne se distingue aujourd'hui.",
                "days": "{n} j",
                "hours": "{n} h",
                "minutes": "{n} min",
                "seconds": "{n} s",
            }
        ),
        "en": MappingProxyType(
            {
                "title": "Parafoudre: the threat weather",
                "today": "Today",
                "since_midnight": "since midnight ({tz})",
                "weather.sunny": "Sunny",
                "weather.cloudy": "A few clouds",
                "weather.rain": "Rain",
                "weather.storm": "Storm",
                "weather.tornado": "Tornado",
                "counts": "Today's blocks by category",
                "counts_note": (
                    "Three families are counted separately: threat lists (intelligence feeds), "
                    "data leaks through DNS, and the town hall's own lists. The weather counts "
                    "all three."
                ),
                "kind.feeds": "Threat lists",
                "kind.exfiltration": "Data leaks (DNS)",
                "kind.lists": "Town hall lists",
                "no_blocks": "No blocks.",
                "blocks": "Today's blocks",
                "col.time": "Time",
                "col.client": "Machine",
                "col.name": "Name asked",
                "col.category": "Category",
                "col.source": "List or signal",
                "col.count": "Count",
                "col.day": "Day",
                "page": "Page {page} of {pages} ({total} blocks)",
                "times": "×{count}",
                "times_title": "{count} identical queries, counted from this time",
                "prev": "← Newer",
                "next": "Older →",
                "history7": "The last 7 days",
                "history30": "The last 30 days",
                "top_names": "Most blocked names today",
                "top_clients": "Machines with most blocks today",
                "feeds": "Threat lists status",
                "feeds_none": "No threat list configured.",
                "col.feed": "List",
                "col.entries": "Names",
                "col.updated": "Updated",
                "col.status": "Status",
                "feed.ok": "up to date",
                "feed.stale": "stale",
                "feed.never": "never downloaded",
                "feed.error": "error: {error}",
                "ago": "{duration} ago",
                "thresholds": "How to read the weather",
                "thresholds_intro": (
                    "The weather counts blocks since midnight. For scale: the Loire programme "
                    "neutralised 422,000 attacks in a year across 92 communes, about 12 a day "
                    "per commune, with a box filtering much more than DNS. An ordinary day here "
                    "is therefore cloudy, a little rain at most."
                ),
                "threshold.sunny": "no block",
                "threshold.range": "{low} to {high} blocks",
                "threshold.from": "{low} blocks or more",
                "losses": (
                    "Warning: {dropped} blocks could not be logged (queue full) and {failed} "
                    "were lost while writing; the figures are underestimated."
                ),
                "db_error": (
                    "The block log cannot be read yet; figures will come back once the "
                    "resolver has created it."
                ),
                "version": "Parafoudre {version}, running for {uptime}",
                "updated": "Updated at {time}",
                "language": "Français",
                "highlight_none": "No machine stands out today.",
                "days": "{n} d",
                "hours": "{n} h",
                "minutes": "{n} min",
                "seconds": "{n} s",
            }
        ),
    }
)

_CATEGORIES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "fr": MappingProxyType(
            {
                "malware": "logiciels malveillants",
                "phishing": "hameçonnage",
                "c2": "pilotage de logiciels malveillants",
                "scam": "arnaques",
                "exfiltration": "fuite de données",
                "ads": "publicité",
                "tracking": "pistage",
            }
        ),
        "en": MappingProxyType(
            {
                "malware": "malware",
                "phishing": "phishing",
                "c2": "malware command and control",
                "scam": "scams",
                "exfiltration": "data leak",
                "ads": "advertising",
                "tracking": "tracking",
            }
        ),
    }
)

# Where the attempts of an infected-looking machine were heading, by category.
_TARGETS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "fr": MappingProxyType(
            {
                "malware": "vers des sites de logiciels malveillants",
                "phishing": "vers des sites d'hameçonnage",
                "c2": "vers des serveurs qui pilotent des logiciels malveillants",
                "scam": "vers des sites d'arnaque",
            }
        ),
        "en": MappingProxyType(
            {
                "malware": "to reach malware sites",
                "phishing": "to reach phishing sites",
                "c2": "to reach servers that control malware",
                "scam": "to reach scam sites",
            }
        ),
    }
)


def text(lang: Lang, key: str, **values: object) -> str:
    """The text ``key`` in ``lang``, with ``values`` filled in."""
    template = _TEXTS[lang][key]
    return template.format(**values) if values else template


def category_label(lang: Lang, category: str) -> str:
    """A readable name for a block category; unknown categories are shown as they are."""
    return _CATEGORIES[lang].get(category, category)


def weather_label(lang: Lang, weather: Weather) -> str:
    return text(lang, f"weather.{weather.value}")


def weather_sentence(lang: Lang, weather: Weather, count: int) -> str:
    """The one-line headline under the icon."""
    if lang == "fr":
        threats = "1 menace bloquée" if count == 1 else f"{count} menaces bloquées"
        tails = {
            Weather.SUNNY: "Grand soleil : aucune menace bloquée depuis minuit.",
            Weather.CLOUDY: f"Quelques nuages : {threats} depuis minuit, une journée calme.",
            Weather.RAIN: f"Pluie : {threats} depuis minuit, une journée chargée mais ordinaire.",
            Weather.STORM: (
                f"Orage : {threats} depuis minuit ; regardez quels postes sont concernés."
            ),
            Weather.TORNADO: (
                f"Tornade : {threats} depuis minuit ; un poste est probablement infecté, "
                "prévenez votre référent informatique."
            ),
        }
    else:
        threats = "1 threat blocked" if count == 1 else f"{count} threats blocked"
        tails = {
            Weather.SUNNY: "Sunny: no threat blocked since midnight.",
            Weather.CLOUDY: f"A few clouds: {threats} since midnight, a quiet day.",
            Weather.RAIN: f"Rain: {threats} since midnight, a busy but ordinary day.",
            Weather.STORM: f"Storm: {threats} since midnight; look at which machines are involved.",
            Weather.TORNADO: (
                f"Tornado: {threats} since midnight; a machine is probably infected, "
                "call your IT contact."
            ),
        }
    return tails[weather]


def highlight_sentence(lang: Lang, count: int, category: str, kind: str, client: str) -> str:
    """One sentence naming a machine that looks infected, e.g. "3 tentatives vers des sites
    d'hameçonnage depuis le poste 192.168.1.23."."""
    if lang == "fr":
        attempts = "1 tentative" if count == 1 else f"{count} tentatives"
        if kind == "exfiltration":
            target = "de fuite de données par le DNS"
        else:
            target = _TARGETS["fr"].get(
                category, f"vers des sites bloqués ({category_label(lang, category)})"
            )
        return f"{attempts} {target} depuis le poste {client} : faites-le vérifier."
    attempts = "1 attempt" if count == 1 else f"{count} attempts"
    if kind == "exfiltration":
        target = "to leak data through DNS"
    else:
        target = _TARGETS["en"].get(
            category, f"to reach blocked sites ({category_label(lang, category)})"
        )
    return f"{attempts} {target} from machine {client}: have it checked."


def duration(lang: Lang, seconds: float) -> str:
    """'3 j 4 h', '12 min': the two largest units of a duration."""
    seconds = max(0, int(seconds))
    parts: list[str] = []
    for key, size in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
        n, seconds = divmod(seconds, size)
        if n or (key == "seconds" and not parts):
            parts.append(text(lang, key, n=n))
        if len(parts) == 2:
            break
    return " ".join(parts)


_WEEKDAYS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
        "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    }
)
_MONTHS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "fr": (
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ),
        "en": (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
    }
)


def long_date(lang: Lang, day: dt.date) -> str:
    """'lundi 9 mars 2026' / 'Monday 9 March 2026' (no locale: the box may have none)."""
    weekday, month = _WEEKDAYS[lang][day.weekday()], _MONTHS[lang][day.month - 1]
    return f"{weekday} {day.day} {month} {day.year}"


def short_date(lang: Lang, day: dt.date) -> str:
    """'lun. 9' / 'Mon 9': a label under a small icon."""
    weekday = _WEEKDAYS[lang][day.weekday()][:3]
    return f"{weekday}. {day.day}" if lang == "fr" else f"{weekday} {day.day}"


def month_name(lang: Lang, month: int) -> str:
    return _MONTHS[lang][month - 1]
