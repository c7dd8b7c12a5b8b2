"""What the batch linkage (issue 5) relies on from Splink 5 with DuckDB 2, checked here so an
upgrade that changes it fails loudly: the API shape (a DuckDB connection of our own, tables
registered from Arrow, `Linker([...], SettingsCreator)`, `predict()` as a DuckDB relation), that it
runs offline, and that Japanese kana compare as text."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import splink.comparison_library as cl
from splink import Linker, SettingsCreator, block_on
from splink.backends.duckdb import DuckDBAPI


def test_a_link_only_model_scores_the_true_pairs_highest() -> None:
    roll = pa.table(
        {
            "unique_id": [1, 2, 3, 4],
            "name_kana": ["ヤマダ タロウ", "スズキ ハナコ", "タナカ イチロウ", "サトウ ジロウ"],
            "birth_date": ["1980-01-01", "1990-02-02", "1975-03-03", "2000-04-04"],
        }
    )
    register = pa.table(
        {
            "unique_id": [10, 11, 12, 13, 14],
            "name_kana": [
                "ヤマダ タロウ",
                "スズキ ハナコ",
                "タナカ イチロー",
                "サトウ ジロウ",
                "サトウ ジロウ",
            ],
            "birth_date": ["1980-01-01", "1990-02-02", "1975-03-03", "2000-04-04", "1960-04-04"],
        }
    )
    db = DuckDBAPI(connection=duckdb.connect())
    left = db.register(roll, dataset_display_name="roll")
    right = db.register(register, dataset_display_name="register")
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[cl.JaroWinklerAtThresholds("name_kana"), cl.ExactMatch("birth_date")],
        blocking_rules_to_generate_predictions=[block_on("birth_date"), block_on("name_kana")],
        probability_two_random_records_match=0.01,
    )
    linker = Linker([left, right], settings)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e4)
    pred = linker.inference.predict().as_pyarrow_table().to_pylist()
    best: dict[int, tuple[float, int]] = {}
    for row in pred:
        ids = {row["unique_id_l"], row["unique_id_r"]}
        roll_id = min(ids)
        other = max(ids)
        if roll_id not in best or row["match_weight"] > best[roll_id][0]:
            best[roll_id] = (row["match_weight"], other)
    assert {k: v[1] for k, v in best.items()} == {1: 10, 2: 11, 3: 12, 4: 13}
