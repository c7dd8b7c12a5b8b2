"""The general check's classification on Spark (``mynumber check-links --engine spark``), for
national scale (82 M links; docs/design.md, "The general check").

The same decisions as :func:`mynumber.agency.checks.classify_duckdb`, expressed for Spark:

1. :data:`~mynumber.agency.checks.FAST_SQL` — the very SQL text DuckDB runs — decides every
   link whose number is unknown or whose five items equal the owner's as written;
2. the rest go through :func:`mynumber.agency.checks.classify` on the executors
   (``mapPartitions``: the same Python function, so the same normalisation);
3. the owner's household is joined for the links that match nobody yet, and
   :func:`mynumber.agency.checks.member_matches` decides ``household_member_number``.

Here the extract has been read, checked and resolved by DuckDB
(:func:`~mynumber.agency.checks.load_extract`, :func:`~mynumber.agency.checks.resolve_numbers`);
the tables go to Spark as Parquet and the verdicts come back the same way, so the report is
written by the same code. On a cluster, the same functions run on the executors
(``spark-submit`` with the package installed on each node); the Parquet files live in shared
storage.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from mynumber.agency.bulk import Register
from mynumber.agency.checks import (
    FAST_SQL,
    MEMBERS_SQL,
    SLOW_SQL,
    VERDICT_SCHEMA,
    CheckResult,
    _counts,
    judge_rows,
    upgrade,
)

__all__ = ["classify_spark", "spark_session"]

_JUDGED = pa.schema([*VERDICT_SCHEMA, ("household_id", pa.string()), ("owner", pa.string())])


def spark_session(master: str = "local[1]") -> Any:
    """A Spark session for the check: `master` ``local[1]`` on one machine (tests, the CLI),
    a cluster's master URL under ``spark-submit``. The UI is off; executors run this Python."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName("mynumber-check-links")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def _judge(rows: Iterator[Any]) -> Iterator[tuple[Any, ...]]:
    """Per partition: the rows of SLOW_SQL → (idx, class, differs, notes, household_id, owner),
    the household (and owner) set only for ``different_person``, to be searched."""
    batch = [r.asDict() for r in rows]
    for row, (idx, v, household) in zip(batch, judge_rows(batch), strict=True):
        yield (
            idx,
            v.cls,
            ";".join(v.differs),
            ";".join(v.notes),
            household,
            row["resident_code"] if household is not None else None,
        )


def _members(rows: Iterator[Any]) -> Iterator[tuple[int]]:
    """Per partition: rows of MEMBERS_SQL → the idx of links another household member
    matches (:func:`~mynumber.agency.checks.upgrade`)."""
    for idx in upgrade(r.asDict() for r in rows):
        yield (idx,)


def classify_spark(
    con: duckdb.DuckDBPyConnection,
    register: Register,
    workdir: Path,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    *,
    spark: Any = None,
) -> CheckResult:
    """Table ``verdicts`` in `con` for every link of ``ext``, decided on Spark (see the module
    docstring); `spark`: a session (default :func:`spark_session`)."""
    from pyspark.sql import functions as F

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    tick = progress("spark", 4) if progress is not None else None
    data = workdir / "spark"
    data.mkdir(exist_ok=True)
    for name in ("ext", "numbers"):
        con.execute(f"COPY {name} TO '{_parquet(data, name).as_posix()}' (FORMAT parquet)")
    pq.write_table(register.people, _parquet(data, "people"))
    session = spark if spark is not None else spark_session()
    for name in ("ext", "numbers", "people"):
        session.read.parquet(str(_parquet(data, name))).createOrReplaceTempView(name)
    if tick is not None:
        tick(1)
    fast = session.sql(FAST_SQL).cache()
    fast.createOrReplaceTempView("fast")
    slow_count = fast.where(F.col("class").isNull()).count()
    judged = session.createDataFrame(
        session.sql(SLOW_SQL).rdd.mapPartitions(_judge), _spark_schema(_JUDGED)
    ).cache()
    if tick is not None:
        tick(1)
    judged.where(F.col("household_id").isNotNull()).select(
        "idx", "household_id", "owner"
    ).createOrReplaceTempView("suspects")
    matched = session.createDataFrame(
        session.sql(MEMBERS_SQL).rdd.mapPartitions(_members), "idx long"
    ).distinct()
    matched = matched.withColumn("member", F.lit(True))
    final = (
        judged.join(matched, "idx", "left")
        .select(
            "idx",
            F.when(F.col("member"), F.lit("household_member_number"))
            .otherwise(F.col("class"))
            .alias("class"),
            "differs",
            "notes",
        )
        .unionByName(
            fast.where(F.col("class").isNotNull()).select(
                "idx", "class", F.lit("").alias("differs"), "notes"
            )
        )
    )
    out = data / "verdicts"
    final.write.mode("overwrite").parquet(str(out))
    if tick is not None:
        tick(1)
    fast.unpersist()
    judged.unpersist()
    con.execute(
        "CREATE OR REPLACE TABLE verdicts AS SELECT idx, class, differs, notes"
        f" FROM read_parquet('{(out / '*.parquet').as_posix()}')"
    )
    result = _counts(con)
    if tick is not None:
        tick(1)
    seconds["spark"] = time.perf_counter() - t0
    result.seconds = seconds
    result.slow = int(slow_count)
    return result


def _parquet(data: Path, table: str) -> Path:
    return data / f"{table}.parquet"


def _spark_schema(schema: pa.Schema) -> str:
    names = {pa.int64(): "long", pa.string(): "string"}
    return ", ".join(f"`{f.name}` {names[f.type]}" for f in schema)
