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
                    "Trois familles de menaces sont comptées séparément : les listes de menaces "
                    "(flux de renseignement), les fuites de données par le DNS, et les listes "
                    "propres à la mairie. La météo compte les trois. Les tentatives de "
                    "contourner le filtre (DNS chiffré extérieur, VPN) sont comptées à part : "
                    "ce ne sont pas des menaces, elles ne changent pas la météo."
                ),
                "kind.feeds": "Listes de menaces",
                "kind.exfiltration": "Fuites de données (DNS)",
                "kind.lists": "Listes de la mairie",
                "kind.bypass": "Contournements du filtre",
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
                "groups": "Blocages d'aujourd'hui par groupe",
                "groups_note": (
                    "Chaque réseau de la commune a sa protection (réglage groups). Un poste "
                    "est compté dans le groupe où le réglage le place maintenant."
                ),
                "group.default": "autres postes (par défaut)",
                "col.group": "Groupe",
                "col.threats": "Menaces",
                "col.bypass": "Contournements",
                "col.machines": "Postes",
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
                "list.blocklist": "votre liste de blocage",
                "list.allowlist": "votre liste autorisée",
                "list.stale": "fichier illisible : dernière copie lue en service",
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
                "col.action": "Action",
                "login": "Se connecter",
                "logout": "Se déconnecter",
                "logged_in": "Connecté : {who}",
                "login.title": "Connexion au tableau de bord Parafoudre",
                "login.intro": (
                    "La page se lit sans connexion ; il faut se connecter pour autoriser un "
                    "nom bloqué à tort."
                ),
                "login.user": "Identifiant",
                "login.password": "Mot de passe",
                "login.token": "Jeton du tableau de bord",
                "login.submit": "Se connecter",
                "login.back": "Retour à la page",
                "login.wrong": "Identifiant ou mot de passe incorrect.",
                "login.wait": "Trop d'essais : attendez 30 secondes avant de réessayer.",
                "login.none": (
                    "Aucune connexion n'est configurée : ajoutez un opérateur "
                    "(`dashboard.operators`, mot de passe haché par `parafoudre hash-password`) "
                    "ou autorisez un nom en ligne de commande : `parafoudre allow NOM`."
                ),
                "allow.name": "Autoriser ce nom",
                "allow.domain": "Autoriser {domain}",
                "allow.title": (
                    "Ne plus bloquer ce nom ni ce qui est en dessous (en vigueur en une seconde, "
                    "annulable plus bas)"
                ),
                "operator.title": "Noms autorisés par l'opérateur",
                "operator.note": (
                    "Chaque nom autorisé l'est avec tout ce qui est en dessous, pour tous les "
                    "postes, quelles que soient les listes. En ligne de commande : "
                    "`parafoudre allow NOM`, `parafoudre allow --remove NOM`."
                ),
                "operator.none": "Aucun nom autorisé depuis cette page ou la ligne de commande.",
                "operator.by": "le {when} par {who}",
                "operator.undo": "Annuler",
                "operator.login_hint": (
                    "Un nom est bloqué à tort ? Connectez-vous pour l'autoriser d'un clic."
                ),
                "operator.actions": "Dernières actions",
                "action.allow": "{when} : {who} a autorisé {name}",
                "action.remove": "{when} : {who} a retiré {name}",
                "notice.allowed": (
                    "{name} est autorisé, avec tout ce qui est en dessous : c'est en vigueur "
                    "dans la seconde, sans redémarrage."
                ),
                "notice.removed": (
                    "{name} n'est plus autorisé : les listes s'appliquent de nouveau."
                ),
                "notice.refused": (
                    "{name} ne peut pas être autorisé (ce n'est pas un nom de domaine, ou c'est "
                    "un suffixe public comme .fr)."
                ),
                "notice.not_found": "{name} n'était pas dans les noms autorisés.",
                "highlight_none": "Aucun poste ne se distingue aujourd'hui.",
                "col.type": "Type",
                "hours_title": "Aujourd'hui, heure par heure",
                "hours_note": (
                    "Blocages par heure ; une case hachurée est une heure où le boîtier ne "
                    "fonctionnait pas : pas de données."
                ),
                "weather.nodata": "Pas de données",
                "weather.fog": "Brouillard",
                "nodata_title": "pas de données : le boîtier ne fonctionnait pas",
                "fog_title": "protection incomplète : un jour sans blocage ne prouve rien",
                "coverage": "en service {covered} sur {span}",
                "running_since": "en service depuis {time}",
                "calm_unprotected": (
                    "Aucune menace bloquée depuis minuit, mais la protection est incomplète : "
                    "ce calme ne prouve rien."
                ),
                "protection": "Protection",
                "protection.ok": "Le boîtier protège : listes à jour, DNS amont joignable, "
                "détection des fuites active, journal écrit.",
                "check.feeds": "Listes de menaces",
                "check.upstream": "Serveurs DNS amont",
                "check.detector": "Détection des fuites",
                "check.blocklog": "Journal des blocages",
                "state.ok": "OK",
                "state.off": "en défaut",
                "state.unknown": "inconnu",
                "problem.feeds_none": (
                    "Protection incomplète : aucune liste de menaces n'est configurée — activez-en "
                    "dans la section feeds de la configuration, puis lancez "
                    "`parafoudre feeds update`."
                ),
                "problem.feeds_never": (
                    "Protection incomplète : les listes de menaces n'ont jamais été téléchargées "
                    "— lancez `parafoudre feeds update`."
                ),
                "problem.feeds_not_loaded": (
                    "Protection incomplète : les listes de menaces sont téléchargées mais le "
                    "résolveur ne les a pas chargées — lancez `systemctl reload parafoudre`."
                ),
                "problem.upstream_down": (
                    "Service interrompu : aucun serveur DNS amont ne répond, les postes "
                    "n'accèdent plus à internet — vérifiez la connexion internet du boîtier "
                    "(câble, box) et la section upstream de la configuration."
                ),
                "problem.feeds_stale": (
                    "Protection affaiblie : les listes de menaces n'ont pas été mises à jour "
                    "depuis {age} — vérifiez l'accès internet du boîtier, puis lancez "
                    "`parafoudre feeds update`."
                ),
                "problem.blocklog_unreadable": (
                    "Journal illisible : le journal des blocages ne peut pas être lu — vérifiez "
                    "que le résolveur tourne (`systemctl status parafoudre`)."
                ),
                "problem.blocklog_failing": (
                    "Journal arrêté : les blocages ne sont plus enregistrés, les chiffres de "
                    "cette page sont incomplets — vérifiez l'espace disque "
                    "(`df -h /var/lib/parafoudre`) et le journal (`journalctl -u parafoudre`)."
                ),
                "problem.detector_off": (
                    "Protection incomplète : la détection des fuites de données par DNS est "
                    "désactivée — mettez `exfiltration.mode: block` dans la configuration."
                ),
                "last_attempt": "Dernière tentative : {diagnosis}.",
                "netfail.dns": (
                    "ce boîtier ne résout pas les noms publics : vérifiez son DNS et sa passerelle"
                ),
                "netfail.route": (
                    "ce boîtier n'a pas de route vers internet : vérifiez le câble, la passerelle "
                    "et la box"
                ),
                "netfail.refused": (
                    "le serveur de la liste refuse la connexion : un pare-feu ou un proxy bloque "
                    "peut-être l'accès"
                ),
                "netfail.tls": (
                    "la connexion sécurisée a échoué : vérifiez l'heure du boîtier, ou un proxy "
                    "qui intercepte HTTPS"
                ),
                "netfail.http": "le serveur de la liste a répondu par une erreur HTTP",
                "netfail.timeout": (
                    "le serveur de la liste n'a pas répondu à temps : réseau lent ou filtré"
                ),
                "netfail.other": "la liste n'a pas pu être téléchargée ni lue",
                "reason.feed": "liste de menaces {name}",
                "reason.list": "liste de la mairie {name}",
                "reason.exfil": "fuite de données par DNS : {signals}",
                "reason.cooldown": "{reason} (domaine mis en quarantaine)",
                "reason.cname": "{reason}, par un alias",
                "reason.dga": "domaine inventé (le poste est probablement infecté)",
                "reason.answer_ip": "{reason}, par son adresse {address}",
                "reason.canary.firefox": "témoin de Firefox (son DNS chiffré reste éteint)",
                "reason.canary.private-relay": "témoin d'iCloud Private Relay (relais éteint)",
                "signal.names": "noms trop variés",
                "signal.volume": "trop de données dans les noms",
                "signal.odd": "caractères inhabituels",
                "signal.qtype": "types de requête de tunnel",
                "signal.rate": "rafale de noms différents",
                "signal.slow": "fuite lente et continue",
                "signal.entropy": "noms d'apparence aléatoire",
                "forbidden": "Cette adresse n'a pas accès au tableau de bord Parafoudre.",
                "unauthorized": "Un jeton valide est nécessaire pour voir cette page.",
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
                    "Three families of threats are counted separately: threat lists "
                    "(intelligence feeds), data leaks through DNS, and the town hall's own "
                    "lists. The weather counts all three. Attempts to get around the filter "
                    "(outside encrypted DNS, VPN) are counted apart: they are not threats and "
                    "leave the weather as it is."
                ),
                "kind.feeds": "Threat lists",
                "kind.exfiltration": "Data leaks (DNS)",
                "kind.lists": "Town hall lists",
                "kind.bypass": "Getting around the filter",
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
                "groups": "Today's blocks per group",
                "groups_note": (
                    "Each network of the commune has its own protection (groups setting). A "
                    "machine is counted in the group the setting puts it in now."
                ),
                "group.default": "other machines (default)",
                "col.group": "Group",
                "col.threats": "Threats",
                "col.bypass": "Bypass attempts",
                "col.machines": "Machines",
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
                "list.blocklist": "your block list",
                "list.allowlist": "your allowlist",
                "list.stale": "file unreadable: last good copy in use",
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
                "col.action": "Action",
                "login": "Log in",
                "logout": "Log out",
                "logged_in": "Logged in: {who}",
                "login.title": "Log in to the Parafoudre dashboard",
                "login.intro": (
                    "The page can be read without logging in; logging in is needed to allow a "
                    "name blocked by mistake."
                ),
                "login.user": "Login",
                "login.password": "Password",
                "login.token": "Dashboard token",
                "login.submit": "Log in",
                "login.back": "Back to the page",
                "login.wrong": "Wrong login or password.",
                "login.wait": "Too many tries: wait 30 seconds before trying again.",
                "login.none": (
                    "No login is configured: add an operator (`dashboard.operators`, password "
                    "hashed by `parafoudre hash-password`) or allow a name from the command "
                    "line: `parafoudre allow NAME`."
                ),
                "allow.name": "Allow this name",
                "allow.domain": "Allow {domain}",
                "allow.title": (
                    "Stop blocking this name and everything under it (in force within a second, "
                    "undo below)"
                ),
                "operator.title": "Names allowed by the operator",
                "operator.note": (
                    "Each name is allowed with everything under it, for every machine, whatever "
                    "the lists say. From the command line: `parafoudre allow NAME`, "
                    "`parafoudre allow --remove NAME`."
                ),
                "operator.none": "No name allowed from this page or the command line.",
                "operator.by": "on {when} by {who}",
                "operator.undo": "Undo",
                "operator.login_hint": (
                    "A name blocked by mistake? Log in to allow it in one click."
                ),
                "operator.actions": "Latest actions",
                "action.allow": "{when}: {who} allowed {name}",
                "action.remove": "{when}: {who} removed {name}",
                "notice.allowed": (
                    "{name} is allowed, with everything under it: in force within a second, "
                    "no restart."
                ),
                "notice.removed": "{name} is no longer allowed: the lists apply again.",
                "notice.refused": (
                    "{name} cannot be allowed (not a domain name, or a public suffix such as .com)."
                ),
                "notice.not_found": "{name} was not among the allowed names.",
                "highlight_none": "No machine stands out today.",
                "col.type": "Type",
                "hours_title": "Today, hour by hour",
                "hours_note": (
                    "Blocks per hour; a hatched cell is an hour the box was not running: no data."
                ),
                "weather.nodata": "No data",
                "weather.fog": "Fog",
                "nodata_title": "no data: the box was not running",
                "fog_title": "protection incomplete: a day without blocks proves nothing",
                "coverage": "running {covered} of {span}",
                "running_since": "running since {time}",
                "calm_unprotected": (
                    "No threat blocked since midnight, but protection is incomplete: this calm "
                    "proves nothing."
                ),
                "protection": "Protection",
                "protection.ok": "The box protects: lists up to date, upstream DNS reachable, "
                "leak detection on, log written.",
                "check.feeds": "Threat lists",
                "check.upstream": "Upstream DNS servers",
                "check.detector": "Leak detection",
                "check.blocklog": "Block log",
                "state.ok": "OK",
                "state.off": "failing",
                "state.unknown": "unknown",
                "problem.feeds_none": (
                    "Protection incomplete: no threat list is configured — enable some in the "
                    "feeds section of the configuration, then run `parafoudre feeds update`."
                ),
                "problem.feeds_never": (
                    "Protection incomplete: the threat lists have never been downloaded — run "
                    "`parafoudre feeds update`."
                ),
                "problem.feeds_not_loaded": (
                    "Protection incomplete: the threat lists are downloaded but the resolver has "
                    "not loaded them — run `systemctl reload parafoudre`."
                ),
                "problem.upstream_down": (
                    "Service down: no upstream DNS server answers, the machines cannot reach "
                    "the internet — check the box's internet link (cable, router) and the "
                    "upstream section of the configuration."
                ),
                "problem.feeds_stale": (
                    "Protection weakened: the threat lists have not been updated for {age} — "
                    "check the box's internet access, then run `parafoudre feeds update`."
                ),
                "problem.blocklog_unreadable": (
                    "Log unreadable: the block log cannot be read — check that the resolver "
                    "runs (`systemctl status parafoudre`)."
                ),
                "problem.blocklog_failing": (
                    "Log stopped: blocks are no longer recorded, the figures on this page are "
                    "incomplete — check the disk space (`df -h /var/lib/parafoudre`) and the "
                    "log (`journalctl -u parafoudre`)."
                ),
                "problem.detector_off": (
                    "Protection incomplete: detection of data leaks through DNS is off — set "
                    "`exfiltration.mode: block` in the configuration."
                ),
                "last_attempt": "Last attempt: {diagnosis}.",
                "netfail.dns": "this box cannot resolve public names: check its DNS and gateway",
                "netfail.route": (
                    "this box has no route to the internet: check the cable, the gateway and "
                    "the router"
                ),
                "netfail.refused": (
                    "the list's server refused the connection: a firewall or proxy may block access"
                ),
                "netfail.tls": (
                    "the secure connection failed: check the box's clock, or a proxy that "
                    "intercepts HTTPS"
                ),
                "netfail.http": "the list's server answered with an HTTP error",
                "netfail.timeout": (
                    "the list's server did not answer in time: slow or filtered network"
                ),
                "netfail.other": "the list could not be downloaded or read",
                "reason.feed": "threat list {name}",
                "reason.list": "town hall list {name}",
                "reason.exfil": "data leak through DNS: {signals}",
                "reason.cooldown": "{reason} (domain quarantined)",
                "reason.cname": "{reason}, through an alias",
                "reason.dga": "invented domain (the machine is probably infected)",
                "reason.answer_ip": "{reason}, through its address {address}",
                "reason.canary.firefox": "Firefox's canary (its own encrypted DNS stays off)",
                "reason.canary.private-relay": "iCloud Private Relay's canary (relay off)",
                "signal.names": "too many different names",
                "signal.volume": "too much data in names",
                "signal.odd": "unusual characters",
                "signal.qtype": "tunnel query types",
                "signal.rate": "burst of different names",
                "signal.slow": "slow, steady leak",
                "signal.entropy": "random-looking names",
                "forbidden": "This address may not see the Parafoudre dashboard.",
                "unauthorized": "A valid token is needed to see this page.",
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
                "bypass": "contournement du filtre",
                "dga": "domaines inventés (logiciel malveillant)",
                "answer-ip": "adresses malveillantes",
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
                "bypass": "getting around the filter",
                "dga": "invented domains (malware)",
                "answer-ip": "malicious addresses",
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
                "bypass": "pour contourner le filtre (DNS chiffré extérieur, VPN, relais)",
            }
        ),
        "en": MappingProxyType(
            {
                "malware": "to reach malware sites",
                "phishing": "to reach phishing sites",
                "c2": "to reach servers that control malware",
                "scam": "to reach scam sites",
                "bypass": "to get around the filter (outside encrypted DNS, VPN, relay)",
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


def bypass_sentence(lang: Lang, count: int) -> str:
    """Beside the weather, never in it: "3 tentatives de contourner le filtre, arrêtées." """
    if lang == "fr":
        attempts = "1 tentative" if count == 1 else f"{count} tentatives"
        return f"{attempts} de contourner le filtre, arrêtée{'s' if count > 1 else ''}."
    attempts = "1 attempt" if count == 1 else f"{count} attempts"
    return f"{attempts} to get around the filter, stopped."


def highlight_sentence(lang: Lang, count: int, category: str, kind: str, client: str) -> str:
    """One sentence naming a machine that looks infected, e.g. "3 tentatives vers des sites
    d'hameçonnage depuis le poste 192.168.1.23."."""
    if lang == "fr":
        attempts = "1 tentative" if count == 1 else f"{count} tentatives"
        if category == "dga":  # resolver/stages/dga.py: the machine itself is the finding
            return (
                f"Le poste {client} cherche des centaines de domaines inventés ({attempts} "
                "bloquées) : il est probablement infecté, faites-le vérifier."
            )
        if kind == "exfiltration":
            target = "de fuite de données par le DNS"
        else:
            target = _TARGETS["fr"].get(
                category, f"vers des sites bloqués ({category_label(lang, category)})"
            )
        return f"{attempts} {target} depuis le poste {client} : faites-le vérifier."
    attempts = "1 attempt" if count == 1 else f"{count} attempts"
    if category == "dga":
        return (
            f"Machine {client} looks up hundreds of invented domains ({attempts} blocked): "
            "it is probably infected, have it checked."
        )
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


# RR type numbers shown by name in the blocks table (RFC 1035, 3596, 9460); others as TYPEn.
_QTYPES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "A",
        2: "NS",
        5: "CNAME",
        6: "SOA",
        10: "NULL",
        12: "PTR",
        15: "MX",
        16: "TXT",
        28: "AAAA",
        33: "SRV",
        35: "NAPTR",
        64: "SVCB",
        65: "HTTPS",
        99: "SPF",
        255: "ANY",
    }
)


def qtype_name(qtype: int) -> str:
    """'A', 'AAAA', 'TXT'... or 'TYPE123' (RFC 3597) for the rest."""
    return _QTYPES.get(qtype, f"TYPE{qtype}")


def reason_text(lang: Lang, reason: str) -> str:
    """A block's reason in words: "feed:urlhaus" -> "liste de menaces urlhaus",
    "exfil:cooldown,names" -> "fuite de données par DNS : noms trop variés (domaine mis en
    quarantaine)". Unknown reasons are returned as they are."""
    base, sep, alias = reason.partition(" cname:")
    base, ip_sep, address = base.partition(" answer-ip:")  # resolver/stages/answer_ip.py
    kind, colon, rest = base.partition(":")
    if not colon:
        words = text(lang, "reason.dga") if base == "dga" else base
    elif kind == "feed":
        words = text(lang, "reason.feed", name=rest)
    elif kind == "list":
        words = text(lang, "reason.list", name=rest)
    elif kind == "canary" and f"reason.canary.{rest}" in _TEXTS[lang]:
        words = text(lang, f"reason.canary.{rest}")
    elif kind == "exfil":
        signals = [s for s in rest.split(",") if s]
        cooldown = "cooldown" in signals
        named = [_TEXTS[lang].get(f"signal.{s}", s) for s in signals if s != "cooldown"]
        words = text(lang, "reason.exfil", signals=", ".join(named) or rest)
        if cooldown:
            words = text(lang, "reason.cooldown", reason=words)
    else:
        words = base
    if ip_sep and address:
        words = text(lang, "reason.answer_ip", reason=words, address=address)
    return text(lang, "reason.cname", reason=words) if sep and alias else words


def netfail_text(lang: Lang, error_class: str) -> str:
    """The plain-language diagnosis of a feed download failure class ("dns", "tls"...)."""
    return _TEXTS[lang].get(f"netfail.{error_class}") or text(lang, "netfail.other")


def blocks_count(lang: Lang, count: int) -> str:
    """'aucun blocage', '1 blocage', '3 blocages' / 'no block', '1 block', '3 blocks'."""
    if lang == "fr":
        return "aucun blocage" if count == 0 else f"{count} blocage" + ("s" if count > 1 else "")
    return "no block" if count == 0 else f"{count} block" + ("s" if count > 1 else "")
