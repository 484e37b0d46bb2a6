"""Which release of the catalog this is: the one for the Django it runs on.

The test upgrades Django alone, so the shop's releases move with Django's, as
if each release of the project were deployed with the Django it needs:
release 1 runs on Django 5.0 (migration 0001); release 2 on Django 5.1
(migration 0002 adds stock levels and a check constraint written with
`condition=`, which Django 5.1 introduced and 5.0 refuses).
"""
import django

RELEASE = 2 if django.VERSION >= (5, 1) else 1

# Where the migrations of each release are (settings.MIGRATION_MODULES).
MIGRATIONS = "catalog.migrations" if RELEASE >= 2 else "catalog.migrations_release1"
