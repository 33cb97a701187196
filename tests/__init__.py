"""Menagerie's tests, one folder per package (tests/curator/imports/ tests curator/imports/, and so on).

Every folder here is a package, so pytest imports tests/curator/imports/test_import.py as
tests.curator.imports.test_import with the project folder first on the import path: the folders named like our
packages (core, curator, trainer, diffusion) never hide them, and two folders may hold files of the same name.
Helpers are imported by their full name (tests.imagefiles); fixtures shared by all tests are in tests/conftest.py."""
