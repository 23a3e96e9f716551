"""Clinical tables: CSV, TSV (BIDS participants.tsv), XLSX, and the column-mapping step."""


import numpy as np
import pytest
from hypothesis import given

from core.errors import InputError
from core.io.tables import ColumnMapping, apply_column_mapping, infer_column_mapping, infer_type, mapping_table, read_table
from tests.io_support import FUZZ, assert_only_input_error, mutated, text_mutated, xlsx_bytes

PARTICIPANTS = (
    "participant_id\tage\tsex\tdiagnosis\tsite\taffected_side\tnihss\timprovement_pct\tnotes\n"
    "sub-01\t61\tM\tstroke\tA\tL\t7\t62.5\tfirst visit\n"
    "sub-02\t74\tF\tStroke\tA\tR\tn/a\t12.0\tmoved\n"
    "sub-03\t58\tM\tParkinson's disease\tB\tR\t3\t55\tok\n"
    "sub-04\t66\tF\tPD\tB\tleft\t5\tn/a\tlate\n"
    "sub-05\t70\tM\tstroke\tA\tLH\t12\t30.5\tnone given\n"
)


# ---------------------------------------------------------------- reading and inference


def test_bids_participants_tsv_inference_and_mapping():
    table = read_table(PARTICIPANTS.encode(), "participants.tsv")
    assert table.frame.shape == (5, 9)
    assert table.frame.at[1, "nihss"] == ""  # "n/a" is missing
    mapping = infer_column_mapping(table)
    assert mapping.roles() == {"patient_id": "participant_id", "outcome": "improvement_pct", "site": "site",
                               "indication": "diagnosis", "affected_hemisphere": "affected_side"}
    assert mapping.types == {"participant_id": "text", "age": "numeric", "sex": "binary", "diagnosis": "categorical", "site": "binary",
                             "affected_side": "categorical", "nihss": "numeric", "improvement_pct": "numeric", "notes": "text"}
    assert mapping.features == {"age": "clin.age", "sex": "clin.sex", "nihss": "clin.nihss"}
    mapped = apply_column_mapping(table, mapping)
    assert list(mapped.patients.index) == ["01", "02", "03", "04", "05"]  # "sub-" removed to match folders
    assert mapped.patients["indication"].tolist() == ["stroke", "stroke", "parkinsons", "parkinsons", "stroke"]
    assert mapped.patients["affected_hemisphere"].tolist() == ["left", "right", "right", "left", "left"]
    assert list(mapped.features.columns) == ["clin.age", "clin.sex_male", "clin.nihss", "clin.indication_pd"]
    np.testing.assert_array_equal(mapped.features["clin.sex_male"], [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(mapped.features["clin.nihss"], [7, np.nan, 3, 5, 12])
    np.testing.assert_array_equal(mapped.outcomes["improvement_pct"], [62.5, 12.0, 55.0, np.nan, 30.5])
    np.testing.assert_array_equal(mapped.outcomes["responder"], [1.0, 0.0, 1.0, np.nan, 0.0])  # threshold 50 %
    assert any(e.status == "warning" and "1 patient(s) have no outcome: 04" in e.message for e in mapped.report)
    rows = mapping_table(table, mapping).set_index("column")
    assert rows.at["notes", "role"] == "ignored" and rows.at["nihss", "missing"] == 1 and rows.at["age", "examples"] == "61, 74, 58"


def test_semicolon_csv_with_decimal_commas_and_a_responder_column():
    text = "Patient ID;Age;Responder;Grip strength (kg)\nP1;60,5;yes;20,1\nP2;70;no;15\nP3;65;yes;\n"
    table = read_table(text.encode(), "clinical.csv")
    mapping = infer_column_mapping(table)
    assert (mapping.patient_id, mapping.responder, mapping.outcome) == ("Patient ID", "Responder", None)
    assert mapping.features == {"Age": "clin.age", "Grip strength (kg)": "clin.grip_strength_kg"}
    mapped = apply_column_mapping(table, mapping)
    assert mapped.outcomes["responder"].dtype == bool and mapped.outcomes["responder"].tolist() == [True, False, True]
    assert mapped.outcomes["improvement_pct"].isna().all()
    np.testing.assert_array_equal(mapped.features["clin.age"], [60.5, 70, 65])
    assert mapped.patients["indication"].unique().tolist() == ["unspecified"]


def test_xlsx_with_numbers_and_precomputed_features():
    rows = [["subject", "dti.cst_fa_affected", "improvement", "Age"], ["S1", 0.41, 55.5, 61], ["S2", 0.52, 70, 59], ["S3", None, 10, 80]]
    table = read_table(xlsx_bytes(rows), "cohort.xlsx")
    assert table.sheet == "clinical" and table.frame.shape == (3, 4)
    mapping = infer_column_mapping(table)
    assert mapping.features == {"dti.cst_fa_affected": "dti.cst_fa_affected", "Age": "clin.age"}  # prefixed names kept
    mapped = apply_column_mapping(table, mapping)
    np.testing.assert_array_equal(mapped.features["dti.cst_fa_affected"], [0.41, 0.52, np.nan])
    assert mapped.outcomes["responder"].tolist() == [True, True, False]


def test_type_inference():
    import pandas as pd

    assert infer_type(pd.Series(["1", "2", "3.5", ""])) == "numeric"
    assert infer_type(pd.Series(["0", "1", "1"])) == "binary"
    assert infer_type(pd.Series(["1", "2", "3", "4", "x"])) == "numeric"  # mostly numbers: 'x' is a typo to report
    assert infer_type(pd.Series(["a", "b", "c", "a"])) == "categorical"
    assert infer_type(pd.Series([f"note {i}" for i in range(30)])) == "text"


# ---------------------------------------------------------------- bad input


def test_duplicate_patient_ids():
    text = PARTICIPANTS + "sub-02\t50\tF\tstroke\tA\tR\t4\t40\tagain\n"
    table = read_table(text.encode(), "participants.tsv")
    with pytest.raises(InputError, match=r"^participants\.tsv: \[participant_id\] duplicate patient id '02' on lines \[3, 7\]; each patient must appear once"):
        apply_column_mapping(table, infer_column_mapping(table))


def test_non_numeric_values_in_a_numeric_column():
    text = PARTICIPANTS.replace("\t74\t", "\tseventy-four\t")
    table = read_table(text.encode(), "participants.tsv")
    mapping = infer_column_mapping(table)
    assert mapping.types["age"] == "numeric"
    with pytest.raises(InputError, match=r"^participants\.tsv: \[age\] non-numeric value\(s\) in numeric column 'age': line 3 \(patient 02\): 'seventy-four'\. Expected numbers"):
        apply_column_mapping(table, mapping)


def test_bad_roles_and_values():
    table = read_table(PARTICIPANTS.replace("\tLH\t", "\tup\t").encode(), "participants.tsv")
    with pytest.raises(InputError, match=r"\[affected_side\] line 6: affected hemisphere 'up'; expected left or right"):
        apply_column_mapping(table, infer_column_mapping(table))
    table = read_table(PARTICIPANTS.encode(), "participants.tsv")
    with pytest.raises(InputError, match=r"\[outcome\] no outcome column mapped"):
        apply_column_mapping(table, ColumnMapping(patient_id="participant_id"))
    with pytest.raises(InputError, match=r"\[site\] the site column 'centre' is not in the table"):
        apply_column_mapping(table, ColumnMapping(patient_id="participant_id", outcome="improvement_pct", site="centre"))
    table = read_table(b"id,Age,AGE!,outcome\nP1,60,61,50\n", "t.csv")
    with pytest.raises(InputError, match=r"columns 'Age' and 'AGE!' would both become feature 'clin\.age'; rename one of them"):
        apply_column_mapping(table, infer_column_mapping(table))
    with pytest.raises(InputError, match=r"unknown mapping field\(s\) \['colour'\]"):
        ColumnMapping.from_dict({"patient_id": "x", "colour": "red"})


def test_malformed_tables():
    with pytest.raises(InputError, match=r"^t\.csv: the table cannot be parsed: .*Every row needs as many cells as the header"):
        read_table(b"id,age\nP1,60\nP2,70,extra,cells\n", "t.csv")
    with pytest.raises(InputError, match=r"column 'age' appears more than once"):
        read_table(b"id,age,age\nP1,60,61\n", "t.csv")
    with pytest.raises(InputError, match=r"^t\.xls: a legacy Excel \(\.xls\) file"):
        read_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "t.xls")
    with pytest.raises(InputError, match=r"expected a text \(CSV\) file, found binary data"):
        read_table(b"id\x00\x01\x02", "t.csv")
    with pytest.raises(InputError, match=r"^t\.xlsx: not a valid XLSX workbook"):
        read_table(b"PK\x03\x04garbage", "t.xlsx")


def test_xlsx_decompression_bomb():
    from core.io.safety import UploadLimits

    bomb = xlsx_bytes([["id", "x"]] + [[f"P{i}", "y" * 1000] for i in range(3000)])
    with pytest.raises(InputError, match=r"^big\.xlsx: decompresses to more than the 1\.0 MB allowed for one upload"):
        read_table(bomb, "big.xlsx", limits=UploadLimits(max_decompressed_bytes=2**20))


# ---------------------------------------------------------------- property tests


def _read_map_apply(raw, name):
    table = read_table(raw, name)
    apply_column_mapping(table, infer_column_mapping(table))


_CSV = PARTICIPANTS.replace("\t", ",")
_XLSX = xlsx_bytes([["participant_id", "age", "sex", "improvement"], ["sub-01", 61, "M", 55.0], ["sub-02", 70, "F", 20.5], ["sub-03", None, "M", 80]])


@FUZZ
@given(text_mutated(_CSV))
def test_malformed_csv_tables_give_only_input_errors(data):
    assert_only_input_error(lambda raw: _read_map_apply(raw, "fuzz.csv"), data)


@FUZZ
@given(text_mutated(PARTICIPANTS))
def test_malformed_tsv_tables_give_only_input_errors(data):
    assert_only_input_error(lambda raw: _read_map_apply(raw, "participants.tsv"), data)


@FUZZ
@given(mutated(_XLSX))
def test_malformed_xlsx_tables_give_only_input_errors(data):
    assert_only_input_error(lambda raw: _read_map_apply(raw, "fuzz.xlsx"), data)


# ---------------------------------------------------------------- outcome measures


def test_outcome_columns_map_to_bank_measures_and_described_ones():
    text = PARTICIPANTS.replace("\tnotes\n", "\tnotes\tfm12\twmft_s\n", 1)
    lines = text.splitlines()
    extra = [("40", "31.5"), ("22", "80"), ("", "12.1"), ("60", ""), ("35", "44")]
    text = "\n".join([lines[0]] + [f"{line}\t{a}\t{b}" for line, (a, b) in zip(lines[1:], extra)]) + "\n"
    table = read_table(text.encode(), "participants.tsv")
    mapping = infer_column_mapping(table)
    mapping.measures = {"fm12": "fmue_total_w12",
                        "wmft_s": {"description": "Wolf Motor Function Test, seconds for 15 timed arm tasks", "indication": "stroke",
                                   "direction": "higher_worse", "name": "WMFT time", "range": [0, 2000], "unit": "s"}}
    mapping.features.pop("fm12", None), mapping.features.pop("wmft_s", None)
    mapped = apply_column_mapping(table, mapping)
    np.testing.assert_array_equal(mapped.outcomes["fmue_total_w12"], [40, 22, np.nan, 60, 35])
    np.testing.assert_array_equal(mapped.outcomes["wmft_time"], [31.5, 80, 12.1, np.nan, 44])
    assert mapped.measures["fmue_total_w12"]["family"] == "fugl_meyer_ue"
    assert mapped.measures["wmft_time"]["descriptor"]["direction"] == "higher_worse" and mapped.measures["wmft_time"]["family"] == "user:wmft_time"
    assert not any(c.startswith("clin.fm12") or c.startswith("clin.wmft") for c in mapped.features.columns)  # never a feature too
    # The Cohort reads the descriptions back from its provenance.
    from core.data.cohort import Cohort

    cohort = Cohort("upload", mapped.patients, mapped.features, mapped.outcomes, 50.0, provenance={"kind": "upload", "measures": mapped.measures})
    specs = cohort.measure_specs()
    assert set(specs) == {"fmue_total_w12", "wmft_time"} and specs["wmft_time"].unit == "s" and specs["wmft_time"].range == (0.0, 2000.0)


def test_columns_named_as_a_bank_measure_are_guessed_as_that_measure_never_as_features():
    text = PARTICIPANTS.replace("\tnotes\n", "\tnotes\tfmue_total_w12\tFM-UE total, 4 weeks\tgrip_kg\n", 1)
    lines = text.splitlines()
    text = "\n".join([lines[0]] + [f"{line}\t{40 + i}\t{30 + i}\t{20 + i}" for i, line in enumerate(lines[1:])]) + "\n"
    table = read_table(text.encode(), "participants.tsv")
    mapping = infer_column_mapping(table)
    # By key and by the bank's display name; "grip_kg" names no measure (grip_kg_w4 / _w12 do), so it stays a feature.
    assert mapping.measures == {"fmue_total_w12": "fmue_total_w12", "FM-UE total, 4 weeks": "fmue_total_w4"}
    assert set(mapping.features) & set(mapping.measures) == set() and mapping.features["grip_kg"] == "clin.grip_kg"
    assert mapping_table(table, mapping).set_index("column").loc[["fmue_total_w12", "grip_kg"], "role"].tolist() == ["measure", "feature"]
    mapped = apply_column_mapping(table, mapping)
    np.testing.assert_array_equal(mapped.outcomes["fmue_total_w4"], 30 + np.arange(len(lines) - 1))
    assert not any("fmue" in c for c in mapped.features.columns)


def test_a_bad_measure_mapping_names_the_column():
    table = read_table(PARTICIPANTS.encode(), "participants.tsv")
    mapping = infer_column_mapping(table)
    mapping.measures = {"nihss": "nihss_week_99"}
    with pytest.raises(InputError, match="participants.tsv: \\[nihss\\] column 'nihss' is mapped to 'nihss_week_99', which is not a measure of the outcome bank"):
        apply_column_mapping(table, mapping)
    mapping.measures = {"nihss": {"description": "NIHSS at discharge", "indication": "stroke"}}
    with pytest.raises(InputError, match="expected a bank measure's key or a description with indication and direction"):
        apply_column_mapping(table, mapping)
    mapping.measures = {"notes": "nihss_w12"}
    with pytest.raises(InputError, match=r"\[notes\] non-numeric value\(s\) in numeric column 'notes': line 2 \(patient 01\): 'first visit'"):
        apply_column_mapping(table, mapping)


# ---------------------------------------------------------------- mostly-numeric columns and scale ranges


def test_a_mostly_numeric_column_is_never_silently_binary_or_categorical():
    import pandas as pd

    # Two distinct values, 3 of 5 numbers: was "binary" (x -> 1, 7 -> 0); now numeric, its text an error.
    assert infer_type(pd.Series(["7", "7", "x", "7", "x"])) == "numeric"
    assert infer_type(pd.Series(["12", "12", "high", "7", "12", "7"])) == "numeric"  # was "categorical"
    assert infer_type(pd.Series(["1", "x", "x"])) == "binary"  # mostly text: levels, as before
    text = "participant_id,nihss,improvement\nP1,7,50\nP2,unknown,20\nP3,7,30\nP4,12,60\nP5,unknown,10\n"
    table = read_table(text.encode(), "t.csv")
    mapping = infer_column_mapping(table)
    assert mapping.types["nihss"] == "numeric"
    with pytest.raises(InputError, match=r"^t\.csv: \[nihss\] non-numeric value\(s\) in numeric column 'nihss': line 3 \(patient P2\): 'unknown'; line 6 \(patient P5\): 'unknown'\. Expected numbers"):
        apply_column_mapping(table, mapping)
    # Made categorical on purpose: allowed, but the report names the cells that are not numbers.
    mapping.types["nihss"] = "categorical"
    mapped = apply_column_mapping(table, mapping)
    assert sorted(c for c in mapped.features.columns if c.startswith("clin.nihss")) == ["clin.nihss_12", "clin.nihss_7", "clin.nihss_unknown"]
    warnings = [e for e in mapped.report if e.status == "warning" and e.field == "nihss"]
    assert len(warnings) == 1
    assert warnings[0].message == (
        "column 'nihss' holds mostly numbers (60%) but is used as categorical; its cells that are not numbers: "
        "line 3 (patient P2): 'unknown'; line 6 (patient P5): 'unknown'. Correct them and make the column numeric, unless the levels are meant."
    )


def test_values_outside_a_known_scale_are_warned_cell_by_cell():
    text = (
        "participant_id,Age,NIHSS,FM-UE,UPDRS-III,mrs,moca,nihss_change,improvement\n"
        "P1,61,7,30,20,3,25,-4,50\n"
        "P2,640,12,70,20,2,26,-50,20\n"  # age 640 (typo), FM-UE 70 > 66
        "P3,58,43,12,140,7,31,3,30\n"  # NIHSS 43, UPDRS-III 140, mRS 7, MoCA 31
        "P4,-1,0,66,0,0,30,0,60\n"  # age -1; the others on the edges of their ranges
    )
    table = read_table(text.encode(), "clinic.csv")
    mapped = apply_column_mapping(table, infer_column_mapping(table))
    named = sorted((e.patient_id, e.field) for e in mapped.report if e.status == "warning" and "range" in e.message)
    assert named == [("P2", "Age"), ("P2", "FM-UE"), ("P3", "NIHSS"), ("P3", "UPDRS-III"), ("P3", "moca"), ("P3", "mrs"), ("P4", "Age")]
    by_cell = {(e.patient_id, e.field): e.message for e in mapped.report if e.status == "warning"}
    assert by_cell[("P2", "Age")] == "line 3 (patient P2), column 'Age': 640 is outside the age (years) range 0-120; check the cell (a typo, another scale or another unit?)."
    assert by_cell[("P3", "UPDRS-III")].startswith("line 4 (patient P3), column 'UPDRS-III': 140 is outside the MDS-UPDRS-III range 0-132")
    # Warnings, not errors: the values are kept for the user to decide.
    assert mapped.features.loc["P2", "clin.age"] == 640.0
    assert not any(e.field == "nihss_change" for e in mapped.report if e.status == "warning")  # a change score has no fixed range
