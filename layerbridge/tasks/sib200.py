"""SIB-200: topic classification of the same FLORES-200 sentences in 200+ languages.

Adelani et al., EACL 2024. 1,004 English sentences from FLORES-200, each labelled with one
of 7 topics and translated into every FLORES-200 language, split train 701 / dev 99 /
test 204 with the same sentence ids in every language. The bridge trains on English
``train`` only, selects on English ``dev``, and is tested on every language's ``test``.

Languages are FLORES-200 codes (``sin_Sinh``, ``swh_Latn``); ISO 639-1 aliases (``si``,
``sw``, ``ta``, ``ur``, ``hi``, ``en``, …) are accepted everywhere a language is named.
The test languages are the language folders present in the local copy (181 in
``../shared/data``), or, from the hub, :data:`HUB_LANGUAGES` plus any FLORES code asked for.

Local layout (the upstream repository's ``data/annotated``)::

    sib200/annotated/<code>/{train,dev,test}.tsv     header index_id, category, text

Hub: ``Davlan/sib200``, one config per language, splits train / validation / test.
"""

from __future__ import annotations

from pathlib import Path

from layerbridge.data import hub
from layerbridge.data.readers import check_columns, read_rows
from layerbridge.data.types import DataReport, Example
from layerbridge.errors import DataError
from layerbridge.languages import ALIASES, FLORES_CODE
from layerbridge.tasks.base import TASKS, RawRow, Task

COLUMNS = ("index_id", "category", "text")
EXPECTED_ROWS = {"train": 701, "dev": 99, "test": 204}
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
HUB_ID = "Davlan/sib200"

#: The paper's low-resource languages (XNLI's sw/ur/hi/th, IndicXNLI's, Sinhala) in FLORES codes.
PAPER_LOW_RESOURCE = (
    "asm_Beng", "ben_Beng", "guj_Gujr", "hin_Deva", "kan_Knda", "mal_Mlym", "mar_Deva", "ory_Orya",
    "pan_Guru", "sin_Sinh", "swh_Latn", "tam_Taml", "tel_Telu", "tha_Thai", "urd_Arab",
)  # fmt: skip

#: Languages offered for the hub source when no local copy lists them (those of ../shared/data).
HUB_LANGUAGES = (
    "ace_Arab", "ace_Latn", "acm_Arab", "acq_Arab", "aeb_Arab", "afr_Latn", "ajp_Arab", "aka_Latn",
    "als_Latn", "amh_Ethi", "apc_Arab", "arb_Arab", "arb_Latn", "ars_Arab", "arz_Arab", "asm_Beng",
    "ast_Latn", "ayr_Latn", "azj_Latn", "bak_Cyrl", "bam_Latn", "ban_Latn", "bel_Cyrl", "bem_Latn",
    "ben_Beng", "bho_Deva", "bjn_Arab", "bod_Tibt", "bos_Latn", "bug_Latn", "bul_Cyrl", "cat_Latn",
    "ceb_Latn", "ckb_Arab", "cym_Latn", "deu_Latn", "dik_Latn", "dzo_Tibt", "ell_Grek", "eng_Latn",
    "epo_Latn", "est_Latn", "eus_Latn", "ewe_Latn", "fao_Latn", "fin_Latn", "fon_Latn", "fra_Latn",
    "fur_Latn", "fuv_Latn", "gaz_Latn", "gla_Latn", "gle_Latn", "glg_Latn", "grn_Latn", "guj_Gujr",
    "hat_Latn", "hau_Latn", "heb_Hebr", "hin_Deva", "hne_Deva", "hrv_Latn", "hun_Latn", "hye_Armn",
    "ibo_Latn", "ilo_Latn", "isl_Latn", "ita_Latn", "jav_Latn", "jpn_Jpan", "kab_Latn", "kac_Latn",
    "kan_Knda", "kas_Arab", "kas_Deva", "kat_Geor", "kaz_Cyrl", "kbp_Latn", "kea_Latn", "khk_Cyrl",
    "khm_Khmr", "kik_Latn", "kin_Latn", "kir_Cyrl", "kmb_Latn", "kmr_Latn", "knc_Arab", "knc_Latn",
    "kon_Latn", "kor_Hang", "lao_Laoo", "lij_Latn", "lim_Latn", "lin_Latn", "lmo_Latn", "ltg_Latn",
    "ltz_Latn", "lug_Latn", "luo_Latn", "lus_Latn", "lvs_Latn", "mag_Deva", "mai_Deva", "mal_Mlym",
    "mar_Deva", "min_Arab", "min_Latn", "mlt_Latn", "mni_Beng", "mri_Latn", "nld_Latn", "nno_Latn",
    "nob_Latn", "npi_Deva", "nso_Latn", "nus_Latn", "nya_Latn", "oci_Latn", "ory_Orya", "pag_Latn",
    "pan_Guru", "pbt_Arab", "pes_Arab", "plt_Latn", "pol_Latn", "por_Latn", "prs_Arab", "quy_Latn",
    "ron_Latn", "run_Latn", "rus_Cyrl", "sag_Latn", "san_Deva", "scn_Latn", "shn_Mymr", "sin_Sinh",
    "slk_Latn", "slv_Latn", "smo_Latn", "sna_Latn", "snd_Arab", "som_Latn", "sot_Latn", "spa_Latn",
    "srd_Latn", "srp_Cyrl", "ssw_Latn", "sun_Latn", "swh_Latn", "szl_Latn", "tam_Taml", "taq_Latn",
    "taq_Tfng", "tat_Cyrl", "tel_Telu", "tgk_Cyrl", "tgl_Latn", "tha_Thai", "tir_Ethi", "tpi_Latn",
    "tsn_Latn", "tuk_Latn", "tum_Latn", "tur_Latn", "twi_Latn", "tzm_Tfng", "uig_Arab", "umb_Latn",
    "urd_Arab", "uzn_Latn", "vec_Latn", "vie_Latn", "war_Latn", "xho_Latn", "ydd_Hebr", "yor_Latn",
    "yue_Hant", "zho_Hans", "zho_Hant", "zsm_Latn", "zul_Latn",
)  # fmt: skip


def local_languages(root: Path) -> tuple[str, ...]:
    """The language folders of a local copy (sorted FLORES codes)."""
    if not root.is_dir():
        raise DataError(f"SIB-200 folder not found: {root}")
    found = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and FLORES_CODE.match(p.name)))
    if not found:
        raise DataError(f"{root} holds no language folders (expected e.g. eng_Latn/, sin_Sinh/)")
    return found


@TASKS.register("sib200")
class Sib200(Task):
    name = "sib200"
    description = "SIB-200 topic classification (7 classes), the same sentences in 180+ languages"
    fields = ("text",)
    default_template = "Sentence: {text} Topic: "
    label_names = (
        "science/technology",
        "travel",
        "politics",
        "sports",
        "health",
        "entertainment",
        "geography",
    )
    default_label_strings = (
        "Science",
        "Travel",
        "Politics",
        "Sports",
        "Health",
        "Entertainment",
        "Geography",
    )
    raw_labels = {name: i for i, name in enumerate(label_names)}
    languages = HUB_LANGUAGES
    low_resource = PAPER_LOW_RESOURCE
    train_language = "eng_Latn"
    parallel = True
    local_folder = "sib200"
    hub_datasets = (HUB_ID,)

    def _resolve_source(self, source: str) -> str:
        resolved = super()._resolve_source(source)
        if resolved == "local":  # the test languages are the folders present
            self.languages = local_languages(self.local_path(self.local_folder, "annotated"))  # type: ignore[misc]
        return resolved

    def canonical_language(self, language: str) -> str:
        return ALIASES.get(language, language)

    def split_languages(self, split: str) -> tuple[str, ...]:
        if split == "train":
            return (self.train_language,)
        return self.languages

    def check_language(self, split: str, language: str) -> None:
        code = self.canonical_language(language)
        if self.source == "hub" and FLORES_CODE.match(code) and split != "train":
            return  # the hub has more languages than we list; it reports unknown ones itself
        super().check_language(split, code)

    def _examples(self, split: str, language: str, report: DataReport) -> tuple[list[Example], str]:
        if self.source == "hub":
            source = f"hub:{HUB_ID}/{language}/{HUB_SPLITS[split]}"
            records = hub.fetch_records(HUB_ID, language, HUB_SPLITS[split])
            rows = (
                {str(k): str(v) for k, v in r.items()} | {"__row__": str(i)} for i, r in enumerate(records)
            )
        else:
            path = self.local_path("sib200", "annotated", language, f"{split}.tsv")
            if not path.is_file():
                raise DataError(f"SIB-200 {split} file for {language} is missing: {path}")
            source = str(path)
            rows = read_rows(path, "tsv")
        raw = [self._raw_row(row, source) for row in rows]
        if not raw:
            raise DataError(f"{source}: the SIB-200 {split} file for {language} is empty")
        if self.source == "local":
            self.check_rows(len(raw), EXPECTED_ROWS[split], source, report)
        return self.convert(raw, split, language, source, report), source

    @staticmethod
    def _raw_row(row: dict[str, str], source: str) -> RawRow:
        check_columns(row, COLUMNS, source)
        where = f"{source}, row {row['__row__']}"
        item = row["index_id"].strip()
        if not item.isdigit():
            raise DataError(f"{where}: malformed row (index_id {row['index_id']!r} is not a number)")
        return RawRow({"text": row["text"]}, row["category"], where, item_id=item)
