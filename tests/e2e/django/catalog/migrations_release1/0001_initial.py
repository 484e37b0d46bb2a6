# Release 1 of the catalog has only its first migration: the same one.
from importlib import import_module

Migration = import_module("catalog.migrations.0001_initial").Migration
