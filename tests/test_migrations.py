"""The Alembic revisions and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from service.db import migrate
from service.db.models import Base


def test_migrations_create_the_schema_the_models_describe(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], f"models and migrations disagree: {diff}"
            assert conn.execute(
                text("SELECT extversion FROM pg_extension WHERE extname='vector'")
            ).scalar()
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    from alembic import command

    command.downgrade(migrate.alembic_config(empty_db_url), "base")
    engine = create_engine(empty_db_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    migrate.upgrade(empty_db_url)


def test_template_vectors_of_512_dimensions_stay_in_the_row(empty_db_url: str) -> None:
    """A 512-d vector (2 KB) would go to the TOAST table under pgvector's default
    storage, and every exact search would read it back from there."""
    migrate.upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("CREATE TEMP TABLE copy (LIKE templates INCLUDING STORAGE INCLUDING DEFAULTS)")
            )
            conn.execute(
                text(
                    "INSERT INTO copy (id, face_id, subject_id, gallery_id, model_id, embedding)"
                    " SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),"
                    " gen_random_uuid(), 'arcface', array_fill(0.04, ARRAY[512])::vector"
                    " FROM generate_series(1, 50)"
                )
            )
            toast = conn.execute(
                text(
                    "SELECT pg_relation_size(reltoastrelid) FROM pg_class"
                    " WHERE oid = 'copy'::regclass"
                )
            ).scalar_one()
            assert toast == 0
    finally:
        engine.dispose()
