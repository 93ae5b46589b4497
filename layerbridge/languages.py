"""Language metadata for reporting: codes, aliases, scripts, and encoder pretraining coverage.

Two code systems meet in this project: the ISO 639-1 codes of XNLI / MARC / Sinhala news
(``si``, ``sw``, ``zh``) and the FLORES-200 codes of SIB-200 (``sin_Sinh``, ``swh_Latn``,
``zho_Hans``: ISO 639-3 + ISO 15924 script). :func:`language_info` reads either.

*Coverage* says whether an encoder saw a language in pretraining. For the XLM-R family
(XLM-R, multilingual-e5, the built-in ``e5-small``) it is the 100 languages of the CC-100
corpus listed in the XLM-R paper (Conneau et al., ACL 2020, appendix table of languages),
written here as ISO 639-1 codes and mapped to the FLORES-200 code(s) of the same language.
Six of the 100 are romanised/Zawgyi variants (bn, hi, ta, te, ur romanised; Burmese Zawgyi)
and Chinese counts twice (Simplified and Traditional); FLORES-200 has no romanised test
sets, so those map onto nothing extra. Dialects and related languages (Egyptian Arabic,
Cantonese, Latgalian, …) are *not* counted as covered: only the language itself. For other
encoders the user supplies the list (:func:`coverage_for`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from layerbridge.errors import ConfigError

FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")

#: ISO 15924 script codes used by FLORES-200 -> script name.
SCRIPTS = {
    "Arab": "Arabic",
    "Armn": "Armenian",
    "Beng": "Bengali",
    "Cyrl": "Cyrillic",
    "Deva": "Devanagari",
    "Ethi": "Ethiopic",
    "Geor": "Georgian",
    "Grek": "Greek",
    "Gujr": "Gujarati",
    "Guru": "Gurmukhi",
    "Hang": "Hangul",
    "Hans": "Han (Simplified)",
    "Hant": "Han (Traditional)",
    "Hebr": "Hebrew",
    "Jpan": "Japanese",
    "Khmr": "Khmer",
    "Knda": "Kannada",
    "Laoo": "Lao",
    "Latn": "Latin",
    "Mlym": "Malayalam",
    "Mymr": "Myanmar",
    "Orya": "Odia",
    "Sinh": "Sinhala",
    "Taml": "Tamil",
    "Telu": "Telugu",
    "Tfng": "Tifinagh",
    "Thai": "Thai",
    "Tibt": "Tibetan",
}

#: The XLM-R / CC-100 pretraining languages (ISO 639-1) -> FLORES-200 code(s) of that language.
#: An empty tuple: the language has no FLORES-200 test set (Breton, Western Frisian, Latin).
XLMR_LANGUAGES: dict[str, tuple[str, ...]] = {
    "af": ("afr_Latn",), "am": ("amh_Ethi",), "ar": ("arb_Arab",), "as": ("asm_Beng",),
    "az": ("azj_Latn",), "be": ("bel_Cyrl",), "bg": ("bul_Cyrl",), "bn": ("ben_Beng",),
    "br": (), "bs": ("bos_Latn",), "ca": ("cat_Latn",), "cs": ("ces_Latn",),
    "cy": ("cym_Latn",), "da": ("dan_Latn",), "de": ("deu_Latn",), "el": ("ell_Grek",),
    "en": ("eng_Latn",), "eo": ("epo_Latn",), "es": ("spa_Latn",), "et": ("est_Latn",),
    "eu": ("eus_Latn",), "fa": ("pes_Arab", "prs_Arab"), "fi": ("fin_Latn",), "fr": ("fra_Latn",),
    "fy": (), "ga": ("gle_Latn",), "gd": ("gla_Latn",), "gl": ("glg_Latn",),
    "gu": ("guj_Gujr",), "ha": ("hau_Latn",), "he": ("heb_Hebr",), "hi": ("hin_Deva",),
    "hr": ("hrv_Latn",), "hu": ("hun_Latn",), "hy": ("hye_Armn",), "id": ("ind_Latn",),
    "is": ("isl_Latn",), "it": ("ita_Latn",), "ja": ("jpn_Jpan",), "jv": ("jav_Latn",),
    "ka": ("kat_Geor",), "kk": ("kaz_Cyrl",), "km": ("khm_Khmr",), "kn": ("kan_Knda",),
    "ko": ("kor_Hang",), "ku": ("kmr_Latn",), "ky": ("kir_Cyrl",), "la": (),
    "lo": ("lao_Laoo",), "lt": ("lit_Latn",), "lv": ("lvs_Latn",), "mg": ("plt_Latn",),
    "mk": ("mkd_Cyrl",), "ml": ("mal_Mlym",), "mn": ("khk_Cyrl",), "mr": ("mar_Deva",),
    "ms": ("zsm_Latn",), "my": ("mya_Mymr",), "ne": ("npi_Deva",), "nl": ("nld_Latn",),
    "no": ("nob_Latn", "nno_Latn"), "om": ("gaz_Latn",), "or": ("ory_Orya",), "pa": ("pan_Guru",),
    "pl": ("pol_Latn",), "ps": ("pbt_Arab",), "pt": ("por_Latn",), "ro": ("ron_Latn",),
    "ru": ("rus_Cyrl",), "sa": ("san_Deva",), "sd": ("snd_Arab",), "si": ("sin_Sinh",),
    "sk": ("slk_Latn",), "sl": ("slv_Latn",), "so": ("som_Latn",), "sq": ("als_Latn",),
    "sr": ("srp_Cyrl",), "su": ("sun_Latn",), "sv": ("swe_Latn",), "sw": ("swh_Latn",),
    "ta": ("tam_Taml",), "te": ("tel_Telu",), "th": ("tha_Thai",), "tl": ("tgl_Latn",),
    "tr": ("tur_Latn",), "ug": ("uig_Arab",), "uk": ("ukr_Cyrl",), "ur": ("urd_Arab",),
    "uz": ("uzn_Latn",), "vi": ("vie_Latn",), "xh": ("xho_Latn",), "yi": ("ydd_Hebr",),
    "zh": ("zho_Hans", "zho_Hant"),
}  # fmt: skip

#: ISO 639-1 codes of languages XLM-R did not see, for aliases (unambiguous ones only).
OTHER_ISO = {
    "ak": "aka_Latn", "ay": "ayr_Latn", "ba": "bak_Cyrl", "bm": "bam_Latn", "bo": "bod_Tibt",
    "dz": "dzo_Tibt", "ee": "ewe_Latn", "fo": "fao_Latn", "gn": "grn_Latn", "ht": "hat_Latn",
    "ig": "ibo_Latn", "ki": "kik_Latn", "kg": "kon_Latn", "lb": "ltz_Latn", "lg": "lug_Latn",
    "li": "lim_Latn", "ln": "lin_Latn", "mi": "mri_Latn", "mt": "mlt_Latn", "ny": "nya_Latn",
    "oc": "oci_Latn", "rn": "run_Latn", "rw": "kin_Latn", "sc": "srd_Latn", "sg": "sag_Latn",
    "sm": "smo_Latn", "sn": "sna_Latn", "ss": "ssw_Latn", "st": "sot_Latn", "tg": "tgk_Cyrl",
    "ti": "tir_Ethi", "tk": "tuk_Latn", "tn": "tsn_Latn", "tt": "tat_Cyrl", "wo": "wol_Latn",
    "yo": "yor_Latn", "zu": "zul_Latn",
}  # fmt: skip

#: ISO 639-1 alias -> FLORES-200 code (first listed variant for macro-languages).
ALIASES: dict[str, str] = {iso: codes[0] for iso, codes in XLMR_LANGUAGES.items() if codes} | OTHER_ISO
_FLORES_TO_ISO = {code: iso for iso, codes in XLMR_LANGUAGES.items() for code in codes} | {
    code: iso for iso, code in OTHER_ISO.items()
}

#: Encoder names (lower-cased substrings) of the XLM-R family, whose coverage is XLM-R's.
XLMR_FAMILY = ("e5-small", "multilingual-e5", "xlm-roberta", "xlmr", "xlm-r")


@dataclass(frozen=True)
class LanguageInfo:
    code: str  # as given (ISO 639-1 or FLORES-200)
    flores: str | None  # FLORES-200 code, if known
    iso: str | None  # ISO 639-1 code, if there is one
    script: str  # ISO 15924 code, "?" if unknown

    @property
    def script_name(self) -> str:
        return SCRIPTS.get(self.script, self.script)


def language_info(code: str) -> LanguageInfo:
    """Metadata of an ISO 639-1 or FLORES-200 code (unknown codes get script "?")."""
    if FLORES_CODE.match(code):
        return LanguageInfo(code, code, _FLORES_TO_ISO.get(code), code.split("_")[1])
    flores = ALIASES.get(code)
    return LanguageInfo(code, flores, code if flores else None, flores.split("_")[1] if flores else "?")


def xlmr_coverage() -> frozenset[str]:
    """Codes (ISO 639-1 and FLORES-200) of the XLM-R pretraining languages."""
    return frozenset(XLMR_LANGUAGES) | frozenset(c for codes in XLMR_LANGUAGES.values() for c in codes)


def read_language_list(value: str | Iterable[str]) -> frozenset[str]:
    """A user's covered-language list: codes, a comma-separated string, or a text file (one per line)."""
    if isinstance(value, str):
        path = Path(value)
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            items = [line.split("#")[0].strip() for line in lines]
        elif "/" in value or value.endswith(".txt"):
            raise ConfigError(f"language list file {value} does not exist")
        else:
            items = value.split(",")
    else:
        items = list(value)
    codes = {item.strip() for item in items if item and item.strip()}
    if not codes:
        raise ConfigError("the covered-language list is empty")
    # accept either code system: add the other spelling of every code we know
    expanded = set(codes)
    for code in codes:
        info = language_info(code)
        expanded |= {c for c in (info.flores, info.iso) if c}
    return frozenset(expanded)


def coverage_for(encoder: str, user_list: str | Iterable[str] | None = None) -> frozenset[str] | None:
    """The languages ``encoder`` was pretrained on: the user's list, XLM-R's, or None (unknown)."""
    if user_list is not None:
        return read_language_list(user_list)
    name = encoder.lower()
    if any(tag in name for tag in XLMR_FAMILY):
        return xlmr_coverage()
    return None


def is_covered(code: str, coverage: frozenset[str] | None) -> bool | None:
    """Whether ``code`` is in ``coverage`` (None when coverage is unknown)."""
    if coverage is None:
        return None
    info = language_info(code)
    return bool({code, info.flores, info.iso} & coverage)


def language_groups(
    codes: Iterable[str], coverage: frozenset[str] | None, low_resource: Iterable[str] = ()
) -> dict[str, list[str]]:
    """Reporting groups: all, low_resource, covered / not_covered (if known), script:<Xxxx>.

    Script groups are listed only when the languages use more than one script.
    """
    codes = list(codes)
    low = set(low_resource)
    groups: dict[str, list[str]] = {"all": codes, "low_resource": [c for c in codes if c in low]}
    if coverage is not None:
        groups["covered"] = [c for c in codes if is_covered(c, coverage)]
        groups["not_covered"] = [c for c in codes if not is_covered(c, coverage)]
    scripts: dict[str, list[str]] = {}
    for code in codes:
        scripts.setdefault(language_info(code).script, []).append(code)
    if len(scripts) > 1:
        for script in sorted(scripts, key=lambda s: (-len(scripts[s]), s)):
            groups[f"script:{script}"] = scripts[script]
    return groups
