"""Anonymity guard: refuse logs with direct identifiers; measure k-anonymity of the rest.

Direct identifiers are looked for in every column left after ``drop:``, by column name and by
content, and the patient_id column is checked too (an e-mail or NHS number used as a pseudonym
is refused). Findings name the column, the kind and the first few file lines, never the values.
There is no switch to let identifiers through: ``drop:`` removes a column before this guard looks.

Content rules work on the distinct values of a column, so a million-row log costs one regex
pass over its few distinct values per column. The heuristics (see docs/data-contract.md):

* e-mail address anywhere in a cell, also written out (``jane (at) example dot org``,
  ``jane[at]example[dot]org``); UK full postcode; US ZIP+4; US SSN (ddd-dd-dddd);
  NHS number (10 digits with a valid modulus-11 check digit); phone numbers (international
  ``+`` and ``00`` forms, UK national form, US ``(ddd) ddd-dddd``, ``ddd-ddd-dddd`` and
  ``ddd.ddd.dddd``); a street address ("12 High Street");
* date of birth: full dates in a column whose name says birth or age, or in age_band / sex; in
  ``patient_id`` any full date (``JD-1984-03-02``, ``JD19840302``: initials plus a date);
* free text (non-contract columns), by content at any length from 8 characters: a cell of two or
  more words whose letters outnumber its digits two to one is text-like, and a column with at
  least five distinct text-like values (and a fifth of its distinct values) is free text;
* person names (non-contract columns and patient_id): most cells look like "Firstname Lastname";
* column headers: the e-mail, phone, NHS and SSN rules apply to each column's name too; such a
  column is named by its position (``(column 4)``), never by its name.

Every pattern is bounded (no unbounded repetition inside a repetition), and cells longer than
``analysis.intake.validate.MAX_CELL_CHARS`` never reach them, so the guard's time is linear in the
number of distinct cells.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis.errors import IdentifierError
from analysis.intake.codes import distinct
from analysis.intake.textmatch import Texts, strip

MAX_LINES = 5

# Column-name rules. Long stems are matched inside the squashed name ("PatientEmail" ->
# "patientemail"); short or ambiguous ones only as whole words ("tel", not "hotel").
_NAME_STEMS = {
    "email": "email", "surname": "person_name", "firstname": "person_name",
    "lastname": "person_name", "fullname": "person_name", "forename": "person_name",
    "givenname": "person_name", "familyname": "person_name", "maidenname": "person_name",
    "telephone": "phone", "phone": "phone", "mobile": "phone", "address": "street_address",
    "street": "street_address", "postcode": "postcode", "postalcode": "postcode",
    "zipcode": "postcode", "nhsnumber": "nhs_number", "socialsecurity": "ssn",
    "insurance": "insurance_number", "dateofbirth": "date_of_birth", "birthdate": "date_of_birth",
    "birthday": "date_of_birth", "freetext": "free_text", "comment": "free_text",
    "remark": "free_text", "notes": "free_text",
    # German, because clinic logs come in it: Vorname, Nachname, Telefon, Strasse, Geburtsdatum.
    "vorname": "person_name", "nachname": "person_name", "telefon": "phone",
    "strasse": "street_address", "straße": "street_address", "anschrift": "street_address",
    "geburt": "date_of_birth",
    "kommentar": "free_text", "bemerkung": "free_text", "notiz": "free_text",
}
_NAME_WORDS = {
    "name": "person_name", "initials": "person_name", "tel": "phone", "fax": "phone",
    "mail": "email", "zip": "postcode", "plz": "postcode", "addr": "street_address",
    "nhs": "nhs_number", "ssn": "ssn", "mrn": "record_number", "dob": "date_of_birth",
    "birth": "date_of_birth", "born": "date_of_birth", "note": "free_text", "text": "free_text",
}
# "clinic_name" or "intervention name" name things, not people.
_NOT_A_PERSON = {"clinic", "site", "practice", "hospital", "centre", "center", "arm", "group",
                 "intervention", "treatment", "study", "trial", "drug", "product", "exercise",
                 "device", "insole", "orthotic", "orthotics", "programme", "program", "scale",
                 "file", "sheet", "variable", "test", "outcome", "measure"}
_AGE_WORDS = {"age", "ageband", "agegroup", "yob", "born", "birth", "dob"}

_EMAIL = r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# Written-out addresses: "jane (at) example dot org", "jane[at]example[dot]org", "jane at x dot org".
_AT = r"(?:\s*[(\[{<]\s*(?:at|@)\s*[)\]}>]\s*|\s+at\s+)"
_DOT = r"(?:\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*|\s+dot\s+|\.)"
_EMAIL_SPELLED = rf"(?i)\b[a-z0-9._%+'-]{{1,64}}{_AT}[a-z0-9-]{{1,63}}(?:{_DOT}[a-z0-9-]{{1,63}}){{0,3}}{_DOT}[a-z]{{2,24}}\b"
_POSTCODE_FULL = r"(?i)[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}"
_POSTCODE_IN_TEXT = r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b"
_ZIP4 = r"\d{5}-\d{4}"
_SSN = r"\d{3}-\d{2}-\d{4}"
_NHS = r"\d{3}[ -]?\d{3}[ -]?\d{4}"
_PHONE = (r"\+\d{1,3}[ .-]?(?:\(0\))?[ .-]?\(?\d{1,5}\)?(?:[ .-]?\d{2,5}){1,4}"  # international
          r"|\(?0\d{2,5}\)?[ -]\d{3,4}[ -]?\d{3,4}|0\d{10}"  # UK national
          r"|00[1-9]\d{0,2}[ .-]?(?:\(0\))?[ .-]?\(?\d{1,5}\)?(?:[ .-]?\d{2,5}){1,4}"  # international, 00
          r"|\(\d{3}\) ?\d{3}[-.]\d{4}|\d{3}[-.]\d{3}[-.]\d{4}")  # US
_STREET = (r"\b\d{1,5}[A-Za-z]?,?\s+(?:[A-Z][A-Za-z'-]+\s+){1,3}"
           r"(?:(?i:street|road|avenue|lane|drive|close|crescent|terrace|grove|gardens|boulevard"
           r"|square|mews|parade|strasse|straße)|St|Rd|Ave|Ln|Dr|Blvd)\b\.?")
_FULL_DATE = (r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?"
              r"|\d{1,2}[./-]\d{1,2}[./-]\d{4}")
# A date anywhere in a patient id: ISO or day-month-year with separators, or 8 digits
# (yyyymmdd / ddmmyyyy) with a plausible month and day, beside letters (initials) or alone.
_DATE_IN_ID = (r"(?:19|20)\d{2}[-./_]?(?:0[1-9]|1[0-2])[-./_]?(?:0[1-9]|[12]\d|3[01])"
               r"|(?:0[1-9]|[12]\d|3[01])[-./_]?(?:0[1-9]|1[0-2])[-./_]?(?:19|20)\d{2}")
_INITIALS_DATE = rf"(?i)(?:^|[^0-9])(?:{_DATE_IN_ID})(?:$|[^0-9])"
# An id no rule here can flag: up to three ASCII letters, then one to seven digits ("P0000001").
# E-mail needs "@"; NHS and phone numbers ten digits; SSN, ZIP+4 and written dates separators;
# a postcode ends in two letters; a date inside an id is eight digits in a row; names,
# addresses, spelled-out e-mails and free text need a space, a comma or a bracket. Distinct
# values like this skip the patterns (a million-patient id column: ~1.5 s of regex passes).
PLAIN_ID = r"[A-Za-z]{0,3}[0-9]{1,7}"
#: Columns with fewer distinct values than this are not screened (nothing to gain).
PLAIN_SCREEN_FROM = 10_000
_UP, _LOW = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿ"
_WORD = rf"[{_UP}][{_LOW}]*(?:[{_UP}][{_LOW}]+)?(?:['’-][{_UP}]?[{_LOW}]+)*"
_PERSON = (rf"{_WORD}(?:\s+[{_UP}]\.?)?\s+(?:(?:van|von|de|der|da|di|le|la|du)\s+)?{_WORD}"
           rf"|{_WORD},\s*{_WORD}")


def _name_words(column: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(column))
    return [w for w in re.split(r"[\W_]+", spaced.lower()) if w]


def name_kind(column: str) -> str | None:
    """The kind of identifier a column's name suggests, or None."""
    words = _name_words(column)
    squashed = "".join(words)
    for stem, kind in _NAME_STEMS.items():
        if stem in squashed:
            return kind
    for word in words:
        if word in _NAME_WORDS:
            if _NAME_WORDS[word] == "person_name" and _NOT_A_PERSON & set(words):
                continue
            return _NAME_WORDS[word]
    return None


def nhs_check_digit_ok(digits: pd.Series) -> np.ndarray:
    """Modulus-11 check of 10-digit strings (NHS Data Dictionary, "NHS number")."""
    matrix = np.array([list(map(int, d)) for d in digits], dtype=np.int64).reshape(-1, 10)
    total = matrix[:, :9] @ np.arange(10, 1, -1)
    check = 11 - total % 11
    check = np.where(check == 11, 0, check)
    return (check != 10) & (check == matrix[:, 9])


def _content_kinds(u: pd.Series, stripped: pd.Series | None = None,
                   plain: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
    """(kind, mask over distinct values) for each content rule that fires (``plain``: values
    matching :data:`PLAIN_ID`, which no rule can flag, are not looked at)."""
    found = []
    stripped = strip(u) if stripped is None else stripped
    # Each pattern once per distinct value (textmatch).
    raw, text = Texts(u, skip=plain), Texts(stripped, skip=plain)
    found.append(("email", raw.contains(_EMAIL) | raw.contains(_EMAIL_SPELLED)))
    nhs_like = text.fullmatch(_NHS)
    nhs = np.zeros(len(u), dtype=bool)
    if nhs_like.any():
        nhs[nhs_like] = nhs_check_digit_ok(stripped[nhs_like].str.replace(r"\D", "", regex=True))
    found.append(("nhs_number", nhs))
    found.append(("ssn", text.fullmatch(_SSN)))
    found.append(("zip_plus4", text.fullmatch(_ZIP4)))
    phone = text.fullmatch(_PHONE) & ~nhs
    digits = text.count(r"\d")
    found.append(("phone", phone & (digits >= 10) & (digits <= 15)))
    found.append(("postcode", text.fullmatch(_POSTCODE_FULL) | raw.contains(_POSTCODE_IN_TEXT)))
    found.append(("street_address", raw.contains(_STREET)))
    return [(kind, mask) for kind, mask in found if mask.any()]


def header_kind(name: str) -> str | None:
    """The kind of identifier a column *name* holds as content (an e-mail as a header), or None."""
    kinds = _content_kinds(pd.Series([str(name)], dtype=object))
    kinds = [k for k, _ in kinds if k in ("email", "phone", "nhs_number", "ssn")]
    return kinds[0] if kinds else None


def find_identifiers(cells: pd.DataFrame, lines: np.ndarray,
                     roles: dict[str, str | None], positions: dict[str, int] | None = None) -> list[dict]:
    """Look for direct identifiers in every column of ``cells``.

    Parameters
    ----------
    cells : DataFrame
        Raw text, one column per file column (after ``drop:``).
    lines : ndarray
        File line of each row.
    roles : dict
        File column -> contract column it feeds, or None for an unused column.
    positions : dict, optional
        File column -> its position in the file (1 = first), to name a column whose header is
        itself an identifier without showing it.

    Returns
    -------
    list of dict
        One finding per column: ``column``, ``kind``, ``basis`` ("content" or "column name"),
        ``lines`` (first file lines with such content, at most 5; line 1 = the header).
    """
    findings = []
    for i, column in enumerate(cells.columns):
        in_header = header_kind(column)
        if in_header is not None:
            where = (positions or {}).get(column, i + 1)
            findings.append({"column": f"(column {where})", "kind": in_header, "basis": "column header",
                             "lines": [1]})
            continue
        role = roles.get(column)
        codes, u = distinct(cells[column])
        stripped = strip(u)
        nonempty = (stripped != "").to_numpy()
        counts = np.bincount(codes, minlength=len(u)) if len(u) else np.zeros(0, int)
        plain = Texts(u).fullmatch(PLAIN_ID) if len(u) >= PLAIN_SCREEN_FROM else None
        hits = _content_kinds(u, stripped, plain) if len(u) else []
        hits += _row_pattern_kinds(column, role, stripped, nonempty, counts, plain)
        if hits:
            kind, mask = hits[0]
            rows = np.flatnonzero(mask[codes])[:MAX_LINES]
            findings.append({"column": column, "kind": kind, "basis": "content",
                             "lines": [int(x) for x in lines[rows]]})
            continue
        kind = name_kind(column)
        if kind is not None:
            rows = np.flatnonzero(nonempty[codes])[:MAX_LINES] if len(u) else []
            findings.append({"column": column, "kind": kind, "basis": "column name",
                             "lines": [int(x) for x in lines[rows]] or [1]})
    return findings


def _row_pattern_kinds(column, role, stripped, nonempty, counts,
                       plain=None) -> list[tuple[str, np.ndarray]]:
    """Rules that judge a column as a whole: dates of birth, free text, person names
    (``stripped``: the column's distinct values, stripped; ``plain`` as for
    :func:`_content_kinds`: their masks are False, their counts of words, letters and digits
    read 0, which changes no rule: each needs two words, a date or a name)."""
    found = []
    if not nonempty.any():
        return found
    n_rows = counts[nonempty].sum()
    words = set(_name_words(column))
    text = Texts(stripped, skip=plain)
    dates = text.fullmatch(_FULL_DATE) & nonempty
    ageish = (bool(words & _AGE_WORDS) or role in ("age_band", "sex")
              or name_kind(column) == "date_of_birth")
    if ageish and counts[dates].sum() >= 0.5 * n_rows:
        found.append(("date_of_birth", dates))
    if role == "patient_id":
        # Only id-like cells (a whole row read into one field by a stray delimiter is not an id).
        idlike = text.fullmatch(r"[A-Za-z0-9._/-]{6,40}")
        dated = text.contains(_INITIALS_DATE) & nonempty & idlike
        if dated.any():
            found.append(("date_of_birth", dated))
    if role is None:
        n_words = text.count(r"[^\W\d_]{2,}")
        long = (n_words >= 4) & (stripped.str.len().to_numpy() >= 20)
        letters = text.count(r"[^\W\d_]")
        digits = text.count(r"\d")
        textlike = ((n_words >= 2) & (stripped.str.len().to_numpy() >= 8) & (letters >= 2 * digits)
                    & nonempty)
        n_distinct = int(nonempty.sum())
        if long.sum() >= 3 or (long.any() and long.sum() >= 0.5 * nonempty.sum()):
            found.append(("free_text", long))
    if role in (None, "patient_id"):
        person = text.fullmatch(_PERSON) & nonempty
        if counts[person].sum() > 0.5 * n_rows:
            found.append(("person_name", person))
    if role is None and not found:  # short free text, once names and long text are ruled out
        # Five distinct texts: a label column ("North wing", "east, annex") has a few.
        if textlike.sum() >= 5 and textlike.sum() >= 0.2 * n_distinct:
            found.append(("free_text", textlike))
    return found


def guard(cells: pd.DataFrame, lines: np.ndarray, roles: dict[str, str | None],
          path: str | None = None, positions: dict[str, int] | None = None) -> None:
    """Raise :class:`IdentifierError` if any column holds direct identifiers."""
    findings = find_identifiers(cells, lines, roles, positions)
    if findings:
        raise IdentifierError(findings, path=path)


def k_anonymity(data: pd.DataFrame, quasi_identifiers, threshold: int) -> pd.DataFrame:
    """Distinct patients per combination of the quasi-identifiers present.

    Parameters
    ----------
    data : DataFrame
        Must hold ``patient_id``; quasi-identifier columns absent from it are skipped.
    quasi_identifiers : sequence of str
        Candidates, e.g. ``("age_band", "sex", "clinic_id")``.
    threshold : int
        Groups with fewer distinct patients than this are flagged (config
        ``disclosure_threshold``).

    Returns
    -------
    DataFrame
        One row per combination: the quasi-identifier columns (missing shown as
        ``"(missing)"``), ``n_patients`` and ``below_threshold``; sorted by the
        quasi-identifiers.
    """
    present = [q for q in quasi_identifiers if q in data.columns]
    if not present:
        n = int(data["patient_id"].nunique())
        return pd.DataFrame({"n_patients": [n], "below_threshold": [n < threshold]})
    fast = _k_anonymity_codes(data, present)
    table = fast if fast is not None else _k_anonymity_frame(data, present)
    table["below_threshold"] = table["n_patients"] < threshold
    return table.sort_values(present, kind="stable").reset_index(drop=True)


def _k_anonymity_codes(data: pd.DataFrame, present: list[str]) -> pd.DataFrame | None:
    """Patients per combination from the Categorical codes alone (the validated table's form
    before its text becomes str): one integer per (combination, patient), no copy of columns.
    None when a column is not Categorical or the integers could overflow."""
    columns = [data[q] for q in present] + [data["patient_id"]]
    if not all(isinstance(c.dtype, pd.CategoricalDtype) for c in columns):
        return None
    labels = [c.cat.categories.astype(str).tolist() + ["(missing)"] for c in columns[:-1]]
    n_patients = len(columns[-1].cat.categories)
    if any(label.count("(missing)") > 1 for label in labels) or \
            np.prod([float(len(lab)) for lab in labels]) * n_patients > 2.0 ** 62:
        return None
    patient = columns[-1].cat.codes.to_numpy()
    if (patient < 0).any():
        return None
    combination = np.zeros(len(data), dtype=np.int64)
    for column, label in zip(columns[:-1], labels):
        codes = column.cat.codes.to_numpy()
        combination *= len(label)
        combination += np.where(codes < 0, len(label) - 1, codes)
    starts = _one_combination_per_patient(patient, combination)
    if starts is not None:  # one (combination, patient) pair per patient: no sort needed
        pair = combination[starts] * n_patients + patient[starts]
    else:
        combination *= n_patients
        combination += patient
        pair = np.unique(combination)
    del combination
    counts = np.bincount(pair // n_patients)
    groups = np.flatnonzero(counts)
    table, rest = {}, groups
    for q, label in reversed(list(zip(present, labels))):
        table[q] = np.asarray(label, dtype=object)[rest % len(label)]
        rest = rest // len(label)
    table = pd.DataFrame({q: table[q] for q in present})
    table["n_patients"] = counts[groups].astype(np.int64)
    return table


def _one_combination_per_patient(patient: np.ndarray, combination: np.ndarray) -> np.ndarray | None:
    """First row of each patient when the rows are grouped by patient code in increasing order
    (the validated table's order) and each patient has one combination throughout; else None."""
    if len(patient) < 2:
        return None
    step = np.diff(patient)
    if (step < 0).any():
        return None
    new = step != 0
    del step
    if not ((combination[1:] == combination[:-1]) | new).all():
        return None
    return np.r_[0, np.flatnonzero(new) + 1]


def _k_anonymity_frame(data: pd.DataFrame, present: list[str]) -> pd.DataFrame:
    """Patients per combination by dropping duplicate rows (any column types)."""
    # One row per patient and combination first (few), then the labels as text (Categorical
    # columns count by their codes, object columns by their values; both give the same table).
    pairs = data[present + ["patient_id"]].drop_duplicates()
    keys = pd.DataFrame({q: pairs[q].astype(object).where(pairs[q].notna(), "(missing)").astype(str)
                         for q in present})
    keys["patient_id"] = pairs["patient_id"].to_numpy()
    table = (keys.groupby(present, sort=True)["patient_id"].size()
             .rename("n_patients").reset_index())
    table["n_patients"] = table["n_patients"].astype(np.int64)
    return table
