"""A minimal Django project whose sessions are kept by coatcheck."""
