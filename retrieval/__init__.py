"""Retrieval: one vector-index interface over pgvector, Qdrant (server or Qdrant Edge)
and Milvus. Postgres is the system of record; the index is a projection of the
``templates`` table that can be rebuilt from it.

The surface the service uses:

- :mod:`retrieval.base`: ``VectorIndex`` (the protocol every backend implements:
  ``ensure_model``, ``drop_model``, ``search``, ``verify``, ``count``, ``health``,
  ``close``), ``ExternalStore`` (the write side of Qdrant/Milvus: ``upsert``,
  ``delete``, ``delete_gallery``, ``optimize``), ``IndexConfig`` and the results
  ``Hit(template_id, subject_id, similarity)`` and ``SubjectHit``. Similarity is cosine
  in [-1, 1] on every backend.
- :func:`retrieval.factory.build_index`: ``IndexConfig`` → ``VectorIndex``; build it
  once per process (FastAPI lifespan, worker start) and pass it down.
- :mod:`retrieval.templates`: ``add_templates(conn, index, rows)`` (binary COPY of the
  template rows + an outbox row each for external engines, in the caller's transaction),
  ``delete_templates(conn, index, ids)``, ``enqueue_deletes(conn, index, face_id= |
  subject_id= | gallery_id=)`` (call *before* the cascade delete), and
  ``ensure_model_index(conn, index, model_id, dim)``.
- ``index.search(conn, vector, gallery_id=, model_id=, k=)`` → ``list[Hit]``;
  :func:`retrieval.ranking.search_subjects` ranks each subject once by its best template
  (over-fetching, threshold); ``index.verify(conn, vector, subject_id=, model_id=)`` →
  best similarity through the (subject_id, model_id) btree, or None.
- :func:`retrieval.outbox.drain` (``drain(engine.begin, index)``: call after each write
  on external backends) and :func:`retrieval.outbox.run_relay` (the background loop).
- :func:`retrieval.rebuild.rebuild` (``faceprint index rebuild``).

Errors are typed (:mod:`retrieval.errors`): ``InvalidVector``, ``DimensionMismatch``,
``UnknownModel``, ``InvalidModelId``, ``IndexUnavailable``, ``UnknownBackend``.

``retrieval`` never imports ``service``: it runs plain, parameterised SQL on the
SQLAlchemy ``Connection`` the caller passes in.
"""
