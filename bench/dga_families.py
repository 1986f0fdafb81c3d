"""DGA families for the evaluation, written from their published descriptions (not their code).

Each generator gives one infected machine's list of names for one day, in the order the bot
tries them. Sources: the DGArchive taxonomy and per-family notes (Plohmann et al., "A
Comprehensive Measurement Study of Domain Generating Malware", USENIX Security 2016), and the
public analyses named per family. Where an analysis gives constants we keep the published
structure (alphabet, lengths, TLD set, seeding, names per day), not byte-exact output.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

LETTERS = string.ascii_lowercase

# A short word list of everyday English, written for this evaluation; dictionary families
# draw from lists of this kind (Suppobox ~380 words, Matsnu verbs and nouns, Gozi a licence
# text). Real names are trained from the top list, never from these.
WORDS = (  # noqa: SIM905 -- a word list reads better as text
    "able about above accept across action active actual address admit adult affect after "
    "again against agent agree ahead allow almost alone along already also always amount "
    "animal answer anyone appear apply approach area argue around arrive article artist "
    "assume attack author avoid away baby back ball bank base beat beautiful because become "
    "before begin behind believe benefit best better between beyond bill black blood blue "
    "board body book born both break bring brother budget build business call camera campaign "
    "cancer capital card care career carry case catch cause cell center central century "
    "certain chair chance change charge check child choice choose church city civil claim "
    "class clear close coach cold collection college color come common company compare "
    "concern condition consider contain continue control cost could country couple course "
    "court cover create crime cultural culture current customer dark data daughter dead deal "
    "death debate decade decide deep defense degree describe design detail develop differ "
    "dinner direction discover discuss disease doctor door down draw dream drive drop during "
    "early east easy economy edge effect effort eight either election else employee energy "
    "enjoy enough enter entire environment especially evening event every evidence exactly "
    "example expect experience expert explain face fact factor fail fall family father fear "
    "feel field fight figure fill film final finally financial find fine finger finish fire "
    "firm first fish five floor focus follow food foot force foreign forget form former "
    "forward free friend front full fund future game garden general generation girl give "
    "glass goal good government great green ground group grow growth guess hair half hand "
    "hang happen happy hard have head health hear heart heat heavy help here herself high "
    "himself history hold home hope hospital hotel hour house however huge human hundred "
    "husband idea identify image imagine impact include increase indeed indicate industry "
    "inside instead interest interview into investment issue item itself join just keep kind "
    "kitchen know land language large last late later laugh lawyer lead leader learn least "
    "leave left legal less letter level life light like likely line list listen little live "
    "local long look lose loss love machine magazine main maintain major make manage market "
    "marriage material matter maybe mean measure media medical meet meeting member memory "
    "mention message method middle might military million mind minute miss mission model "
    "modern moment money month more morning most mother mouth move movie much music must "
    "myself name nation natural nature near nearly need network never news next nice night "
    "none north note nothing notice number occur offer office officer official often once "
    "only onto open operation option order organization other others outside owner page "
    "pain painting paper parent part party pass past patient pattern peace people perform "
    "perhaps period person phone physical pick picture piece place plan plant play player "
    "point police policy political poor popular position positive power practice prepare "
    "present pressure pretty prevent price private probably problem process produce product "
    "program project property protect prove provide public pull purpose push quality "
    "question quickly quite race radio raise range rate rather reach read ready real reality "
    "realize reason receive recent recognize record reduce reflect region relate remain "
    "remember remove report represent require research resource respond rest result return "
    "reveal rich right rise risk road rock role room rule safe same save scene school "
    "science score season seat second section security seek seem sell send senior sense "
    "series serious serve service seven several shake share shoot short shot should "
    "shoulder show side sign similar simple simply since sing single sister site situation "
    "size skill small smile social society soldier some someone something sometimes song "
    "soon sort sound source south space speak special specific speech spend sport spring "
    "staff stage stand standard star start state statement station stay step still stock "
    "stop store story strategy street strong structure student study stuff style subject "
    "success suddenly suffer suggest summer support sure surface system table take talk task "
    "teach teacher team technology television tell tend term test thank their them theory "
    "there these thing think third those though thought thousand threat three through "
    "throughout throw thus time today together tonight total tough toward town trade "
    "traditional training travel treat treatment tree trial trip trouble true truth turn "
    "type under understand unit until upon usually value various very victim view violence "
    "visit voice vote wait walk wall want watch water weapon wear week weight well west "
    "western whatever wheel when where whether which while white whole whose wide wife will "
    "wind window wish with within without woman wonder word work worker world worry would "
    "write writer wrong yard yeah year young yourself"
).split()


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "arithmetic", "hash", "dictionary", "permutation"
    source: str  # the published description followed
    generate: Callable[[random.Random, int], list[str]]  # (rng, day) -> the day's names
    interval: float  # seconds between two tries (the bot's pace)


def _letters(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def conficker(rng: random.Random, day: int) -> list[str]:
    # Conficker.C: 50,000 names a day, 500 tried, 4-9 letters, 110 TLDs (Porras, Saidi and
    # Yegneswaran, "Conficker C Analysis", SRI 2009).
    tlds = [
        "com",
        "net",
        "org",
        "info",
        "biz",
        "cn",
        "ws",
        "cc",
        "de",
        "fr",
        "be",
        "ch",
        "nl",
        "pl",
        "ru",
        "ua",
        "at",
        "se",
        "dk",
        "es",
        "it",
        "co.uk",
        "com.br",
        "in",
        "jp",
        "kr",
    ]
    seeded = random.Random(f"conficker-{day}")
    names = [f"{_letters(seeded, 4, 9)}.{seeded.choice(tlds)}" for _ in range(50_000)]
    return rng.sample(names, 500)


def cryptolocker(rng: random.Random, day: int) -> list[str]:
    # CryptoLocker: seeded by day, month and year; 1,000 names a day; 12-15 letters; TLDs
    # com net biz ru org co.uk info (Dell SecureWorks CTU, "CryptoLocker Ransomware", 2013).
    seeded = random.Random(f"cryptolocker-{day}")
    tlds = ["com", "net", "biz", "ru", "org", "co.uk", "info"]
    return [f"{_letters(seeded, 12, 15)}.{tlds[i % 7]}" for i in range(1000)]


def necurs(rng: random.Random, day: int) -> list[str]:
    # Necurs: 2,048 names per 4-day period, 7-21 letters, 43 TLDs (Cert.pl / DGArchive).
    tlds = [
        "tj",
        "in",
        "jp",
        "tw",
        "ac",
        "cm",
        "la",
        "mn",
        "so",
        "sh",
        "sc",
        "nu",
        "nf",
        "mu",
        "ms",
        "mx",
        "ki",
        "im",
        "cx",
        "cc",
        "tv",
        "bz",
        "me",
        "eu",
        "de",
        "ru",
        "co",
        "su",
        "pw",
        "kz",
        "sx",
        "us",
        "ug",
        "ir",
        "to",
        "ga",
        "com",
        "net",
        "org",
        "biz",
        "xxx",
        "pro",
        "bit",
    ]
    seeded = random.Random(f"necurs-{day // 4}")
    return [f"{_letters(seeded, 7, 21)}.{seeded.choice(tlds)}" for _ in range(2048)]


def ramnit(rng: random.Random, day: int) -> list[str]:
    # Ramnit: a linear congruential generator from a seed in the binary; 8-19 letters; .com
    # (Bader, "The DGA of Ramnit", 2015; DGArchive).
    seed = 0x79159C10 + day
    out = []
    for _ in range(300):
        seed = (16807 * (seed % 127773) - 2836 * (seed // 127773)) & 0xFFFFFFFF
        n = seed % 12 + 8
        label = []
        for _ in range(n):
            seed = (16807 * (seed % 127773) - 2836 * (seed // 127773)) & 0xFFFFFFFF
            label.append(LETTERS[seed % 25])
        out.append("".join(label) + ".com")
    return out


def gameover(rng: random.Random, day: int) -> list[str]:
    # Gameover Zeus: MD5 of the date and an index, each digest byte mapped to a letter or
    # digit; 1,000 names a day; TLDs biz com net org (Andriesse et al., "Highly Resilient
    # Peer-to-Peer Botnets Are Here", MALWARE 2013; DGArchive).
    tlds = ["biz", "com", "net", "org"]
    out = []
    for i in range(1000):
        digest = hashlib.md5(f"gameover-{day}-{i}".encode()).digest()
        alphabet = LETTERS + string.digits
        label = "".join(alphabet[b % 36] for b in digest)[: 20 + digest[0] % 9]
        out.append(f"{label}.{tlds[i % 4]}")
    return out


def dyre(rng: random.Random, day: int) -> list[str]:
    # Dyre: SHA-256 of the date and a counter, hex, a letter in front; 333 names a day;
    # TLDs cc ws to in hk cn tk so (Bader, "The DGA of Dyre", 2015).
    tlds = ["cc", "ws", "to", "in", "hk", "cn", "tk", "so"]
    out = []
    for i in range(333):
        digest = hashlib.sha256(f"dyre-{day}-{i}".encode()).hexdigest()
        out.append(f"{LETTERS[i % 26]}{digest[3:35]}.{tlds[i % 8]}")
    return out


def suppobox(rng: random.Random, day: int) -> list[str]:
    # Suppobox: two words of a list of ~380, concatenated, seeded by the time; .net (and .ru)
    # (Geffner, "End-to-end analysis of a domain generating algorithm malware family", Black
    # Hat USA 2013).
    seeded = random.Random(f"suppobox-{day}")
    words = seeded.sample(WORDS, 384)
    return [f"{seeded.choice(words)}{seeded.choice(words)}.net" for _ in range(85)]


def matsnu(rng: random.Random, day: int) -> list[str]:
    # Matsnu: verbs and nouns of its lists joined, sometimes with a hyphen, up to 24 letters,
    # .com (Check Point, "Matsnu" technical report, 2015; DGArchive).
    seeded = random.Random(f"matsnu-{day}")
    out = []
    for _ in range(200):
        parts: list[str] = []
        while sum(map(len, parts)) < 12:
            parts.append(seeded.choice(WORDS))
        joiner = "-" if seeded.random() < 0.4 else ""
        out.append(joiner.join(parts)[:24].strip("-") + ".com")
    return out


def gozi(rng: random.Random, day: int) -> list[str]:
    # Gozi/ISFB: pieces of words of a public text (a licence, an RFC) joined to 12-23
    # letters; com net org ru (Bader, "The DGA of Gozi/ISFB", 2016; DGArchive).
    seeded = random.Random(f"gozi-{day}")
    tlds = ["com", "net", "org", "ru"]
    out = []
    for i in range(300):
        label = ""
        while len(label) < seeded.randint(12, 23):
            w = seeded.choice(WORDS)
            label += w[: seeded.randint(3, len(w))]
        out.append(f"{label[:23]}.{tlds[i % 4]}")
    return out


def pykspa(rng: random.Random, day: int) -> list[str]:
    # Pykspa/Simda-like: pronounceable names, consonants and vowels in turn, 6-12 letters,
    # com net org info cc (DGArchive's "pykspa" and "simda" notes).
    seeded = random.Random(f"pykspa-{day}")
    cons, vows = "bcdfghjklmnpqrstvwxz", "aeiouy"
    tlds = ["com", "net", "org", "info", "cc"]
    out = []
    for _ in range(400):
        n = seeded.randint(6, 12)
        label = "".join(seeded.choice(cons if k % 2 == 0 else vows) for k in range(n))
        out.append(f"{label}.{seeded.choice(tlds)}")
    return out


def banjori(rng: random.Random, day: int) -> list[str]:
    # Banjori: the first four letters of a seed name changed arithmetically each step, the
    # rest kept: earnestnessbiophysicalohax.com (Bader, "The DGA of Banjori", 2015).
    seed = "earnestnessbiophysicalohax"
    out = []
    s = list(seed)
    for _ in range(200):
        a, b, c, d = (ord(x) - 97 for x in s[:4])
        s[0] = chr((a + 3 * d) % 26 + 97)
        s[1] = chr((b + 2 * c) % 26 + 97)
        s[2] = chr((c + a + 1 + day % 5) % 26 + 97)
        s[3] = chr((d + b + s.count("a")) % 26 + 97)
        out.append("".join(s) + ".com")
    return out


# Written after the defaults were chosen, and never used to choose them: families the detector
# had not seen.


def tinba(rng: random.Random, day: int) -> list[str]:
    # Tinba: 12 letters each derived from the previous name by a fixed arithmetic, a
    # hard-coded seed domain, TLDs com in net ru biz (Bader, "The DGA of Tinba", 2015).
    tlds = ["com", "in", "net", "ru", "biz"]
    seeded = random.Random(f"tinba-{day}")
    out, label = [], list("ljhgjndhrfqu")
    for i in range(1000):
        label = [LETTERS[(ord(c) - 97 + seeded.randrange(26)) % 26] for c in label]
        out.append("".join(label) + "." + tlds[i % 5])
    return out


def qakbot(rng: random.Random, day: int) -> list[str]:
    # Qakbot: a Mersenne Twister seeded from the date (and a CRC), 8-25 letters, TLDs com net
    # org info biz (DGArchive; Bader, "The DGA of Qakbot", 2016).
    seeded = random.Random(f"qakbot-{day // 10}")
    tlds = ["com", "net", "org", "info", "biz"]
    return [f"{_letters(seeded, 8, 25)}.{seeded.choice(tlds)}" for _ in range(5000)]


def nymaim2(rng: random.Random, day: int) -> list[str]:
    # Nymaim2: two words of its lists joined, sometimes with a hyphen, many TLDs (DGArchive;
    # Bader, "The DGA of Nymaim2", 2018).
    seeded = random.Random(f"nymaim2-{day}")
    tlds = ["com", "net", "in", "ru", "info", "biz", "org", "pw", "top", "xyz"]
    out = []
    for _ in range(64):
        sep = "-" if seeded.random() < 0.3 else ""
        out.append(f"{seeded.choice(WORDS)}{sep}{seeded.choice(WORDS)}.{seeded.choice(tlds)}")
    return out


def symmi(rng: random.Random, day: int) -> list[str]:
    # Symmi: pronounceable, letter pairs of a consonant and a vowel, .ddns.net dropped here
    # for a registrable TLD (DGArchive).
    seeded = random.Random(f"symmi-{day}")
    cons, vows = "bcdfghklmnprstvxz", "aeiou"
    out = []
    for _ in range(64):
        n = seeded.randint(4, 7)
        out.append("".join(seeded.choice(cons) + seeded.choice(vows) for _ in range(n)) + ".com")
    return out


FAMILIES = (
    Family("conficker", "arithmetic", "SRI Conficker C analysis 2009", conficker, 2.0),
    Family("cryptolocker", "arithmetic", "Dell SecureWorks 2013", cryptolocker, 1.0),
    Family("necurs", "arithmetic", "DGArchive", necurs, 0.5),
    Family("ramnit", "arithmetic", "Bader 2015 (LCG)", ramnit, 1.0),
    Family("gameover", "hash", "Andriesse et al. 2013 (MD5)", gameover, 0.3),
    Family("dyre", "hash", "Bader 2015 (SHA-256)", dyre, 1.0),
    Family("suppobox", "dictionary", "Geffner, Black Hat 2013", suppobox, 5.0),
    Family("matsnu", "dictionary", "Check Point 2015", matsnu, 3.0),
    Family("gozi", "dictionary", "Bader 2016", gozi, 2.0),
    Family("pykspa", "arithmetic (pronounceable)", "DGArchive", pykspa, 1.0),
    Family("banjori", "permutation", "Bader 2015", banjori, 1.0),
    # The same algorithms at one try a minute: no burst to see.
    Family("ramnit-slow", "arithmetic, 1/min", "Bader 2015 (LCG)", ramnit, 60.0),
    Family("suppobox-slow", "dictionary, 1/min", "Geffner, Black Hat 2013", suppobox, 60.0),
    Family("tinba (unseen)", "arithmetic", "Bader 2015", tinba, 1.0),
    Family("qakbot (unseen)", "arithmetic", "Bader 2016", qakbot, 2.0),
    Family("nymaim2 (unseen)", "dictionary", "Bader 2018", nymaim2, 4.0),
    Family("symmi (unseen)", "pronounceable", "DGArchive", symmi, 3.0),
)
