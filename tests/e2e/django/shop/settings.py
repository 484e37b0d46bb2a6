"""Settings of the shop: a small real Django project that tests/e2e_django.rs
upgrades with playbooks/django/upgrade.toml.

The database comes from the environment, under libpq's own names (`PGHOST`,
`PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`), so that one set of variables
serves Django, `psql`, `pg_dump` and `pg_restore` alike.
"""
import os
from pathlib import Path

from catalog import release

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "not-a-secret-only-for-the-e2e-tests")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "catalog",
]
ROOT_URLCONF = "shop.urls"
TEMPLATES = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "shop"),
        "USER": os.environ.get("PGUSER", ""),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", ""),
        "PORT": os.environ.get("PGPORT", ""),
    }
}

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# The catalog's migrations are those of its release (see catalog/release.py).
MIGRATION_MODULES = {"catalog": release.MIGRATIONS}
