# Puts this directory on sys.path, so the tests import textkit without an install.
