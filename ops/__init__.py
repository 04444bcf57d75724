"""Operations: settings, the local stack, Celery app and tasks, benchmarks and the CLI.

Kept import-light on purpose: every other subpackage imports settings and errors from here, so
nothing heavy (clients, models) may be imported at package level.
"""
