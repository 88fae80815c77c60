"""The ``dragsaw`` command."""
def main(argv=None):
    return 0
